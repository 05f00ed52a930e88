"""The scenario registry, kept apart so scenario modules can import it without cycles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.sandbox.sandbox import Sandbox
    from bot.sandbox.world import SandboxGuild
    from guild_sync.site.records import User

Play = Callable[["Sandbox"], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    play: Play
    default_members: int = 20_000
    seed_site: bool = True
    """Whether the site starts equal to the guild (False: the start-up sync fills it)."""
    site_users: Callable[[SandboxGuild], list[User]] | None = None
    """What the seeded site holds instead of the guild's expected users (the records another
    bot wrote, say); roles are always the guild's."""
    stale_users: int = 0
    """How many seeded users carry an outdated name, so the start-up sync has work to do."""
    reject_writes: bool = False
    """Whether the sandbox site starts refusing every write (a site that is down for writes)."""
    settings: dict[str, str] = field(default_factory=dict)
    """Extra bot settings for this scenario."""
    site_faults: dict[str, Any] = field(default_factory=dict)
    """Fault settings the sandbox site starts with (see FaultConfig; seeded by `--seed`)."""
    reads_site_counters: bool = False
    """Whether the scenario times its moves by the sandbox site's private counters."""
    site_cost: str = "none"
    """The sandbox site's cost model unless `--site-cost` says otherwise (bot/sandbox/site/
    cost.py): "real" for the scenarios that show what moderators see at the real site's pace,
    "none" for the fault matrix, where it would only slow the runs down."""
    site_memory_limit_mib: Callable[[int, int], float] | None = None
    """The sandbox site's memory limit for (members, workers), in MiB (None: no limit)."""
    rehearsable: bool = False
    """Whether it works against an operator's own site (`--site-url`, a rehearsal): it changes
    the site only through the bot and the site's API, and waits only on Discord, the log channel
    and the site's API reads, never on the sandbox site's controls (faults, the hold gate, its
    private counters, restarts). Declared by each scenario that does, because a scenario's code
    is what uses those controls; one whose options need them cannot declare it."""
    full_sync: bool = False
    """Whether it runs a whole user or role sync (a moderator's command, or the start-up sync of
    a restarted bot), which marks every site user the guild lacks as left and deletes every role
    it lacks: rehearsed only on an empty site, never beside existing records."""

    def __post_init__(self) -> None:
        if self.rehearsable and self.needs_sandbox_site:
            raise ValueError(f"scenario {self.name!r} needs the sandbox site's controls")

    @property
    def needs_sandbox_site(self) -> bool:
        """Whether its options break or watch the site through controls only the sandbox site
        has (its play may use more: see `rehearsable`)."""
        return bool(
            self.reject_writes
            or self.site_faults
            or self.stale_users
            or self.reads_site_counters
            or self.site_memory_limit_mib
        )

    @property
    def writes_beside_existing(self) -> bool:
        """Whether a rehearsal of it can leave a site's existing records as they were."""
        return self.seed_site and not self.full_sync


SCENARIOS: dict[str, Scenario] = {}


def rehearsable_names() -> list[str]:
    """The scenarios that can be played against an operator's own site, by name."""
    return sorted(name for name, found in SCENARIOS.items() if found.rehearsable)


def scenario(name: str, summary: str, **options: Any) -> Callable[[Play], Play]:
    """Register the decorated function as scenario `name` (options: the fields of Scenario)."""

    def register(play: Play) -> Play:
        SCENARIOS[name] = Scenario(name, summary, play, **options)
        return play

    return register
