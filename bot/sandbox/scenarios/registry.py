"""The scenario registry, kept apart so scenario modules can import it without cycles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.sandbox.sandbox import Sandbox

Play = Callable[["Sandbox"], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    default_members: int
    play: Play
    seed_site: bool = True
    """Whether the site starts equal to the guild (False: the start-up sync fills it)."""
    stale_users: int = 0
    """How many seeded users carry an outdated name, so the start-up sync has work to do."""
    reject_writes: bool = False
    """Whether the sandbox site starts refusing every write (a site that is down for writes)."""
    settings: dict[str, str] = field(default_factory=dict)
    """Extra bot settings for this scenario."""
    site_faults: dict[str, Any] = field(default_factory=dict)
    """Fault settings the sandbox site starts with (see FaultConfig; seeded by `--seed`)."""


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    name: str,
    summary: str,
    *,
    default_members: int = 20_000,
    seed_site: bool = True,
    stale_users: int = 0,
    reject_writes: bool = False,
    settings: dict[str, str] | None = None,
    site_faults: dict[str, Any] | None = None,
) -> Callable[[Play], Play]:
    def register(play: Play) -> Play:
        SCENARIOS[name] = Scenario(
            name,
            summary,
            default_members,
            play,
            seed_site,
            stale_users,
            reject_writes,
            dict(settings or {}),
            dict(site_faults or {}),
        )
        return play

    return register
