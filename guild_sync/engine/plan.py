"""What a dry run reports: the writes a sync would make, counted, with a small sample; and, for
the guard's plan, the writes themselves, so the run it was made for need not read the site again.
"""

from __future__ import annotations

from array import array
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from guild_sync.engine.diff import DiffStats, Kind, UserChange
from guild_sync.engine.guild import GuildState
from guild_sync.site.records import USER_FIELDS

SAMPLE_SIZE = 10


@dataclass(frozen=True)
class SampleChange:
    user_id: int
    kind: str
    changes: dict[str, tuple[Any, Any]]
    """field -> (site value, guild value); for a create only the guild values (site None)."""


_KINDS = tuple(Kind)


class RecordedChanges:
    """The writes a pass over the site found, nine bytes each (an id, a kind, a field mask).

    An automatic user sync first plans, for the guard; the run then sends these instead of
    reading every page of the site again (on the real site, the users endpoint is the one load
    has killed pods of). Values are read from the guild when each chunk is built, as for a
    streamed run, so a write recorded minutes before the run still carries the newest values;
    what changed on Discord since the pass was written by its own event meanwhile.
    """

    def __init__(self) -> None:
        self._ids = array("q")
        self._kinds = bytearray()
        self._masks = bytearray()
        self._leaves = bytearray()

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, change: UserChange) -> None:
        self._ids.append(change.user_id)
        self._kinds.append(_KINDS.index(change.kind))
        self._masks.append(
            sum(1 << i for i, name in enumerate(USER_FIELDS) if name in change.fields)
        )
        self._leaves.append(change.leave)

    async def replay(self) -> AsyncIterator[UserChange]:
        for user_id, kind, mask, leave in zip(
            self._ids, self._kinds, self._masks, self._leaves, strict=True
        ):
            fields = frozenset(name for i, name in enumerate(USER_FIELDS) if mask >> i & 1)
            yield UserChange(user_id, _KINDS[kind], fields, None, leave=bool(leave))


@dataclass
class Plan:
    """Counts per kind and per field; `leaves` and `creates` feed the destructive-diff guard."""

    creates: int = 0
    updates: int = 0
    leaves: int = 0
    unchanged: int = 0
    scanned: int = 0
    by_field: dict[str, int] = field(default_factory=dict)
    sample: list[SampleChange] = field(default_factory=list)
    stats: DiffStats | None = None
    """The pass's own counts, as a run replaying `changes` reports them."""
    changes: RecordedChanges | None = None
    """The writes themselves, when the plan was made for a run (`plan_users(record=True)`)."""

    @property
    def writes(self) -> int:
        return self.creates + self.updates + self.leaves

    @property
    def update_fields(self) -> dict[str, int]:
        """Per field, how many site users an update would write it for (the mass-update
        guard's counts): `by_field` without the `in_guild` of the users marked as left."""
        return update_fields(self.by_field, self.leaves)

    def note(self, change: UserChange, guild: GuildState) -> None:
        """Keep `change` in the sample if there is room (values read from the guild now)."""
        if len(self.sample) >= SAMPLE_SIZE:
            return
        current = guild.member(change.user_id)
        changes: dict[str, tuple[Any, Any]] = {}
        for name in sorted(change.fields):
            old = getattr(change.site, name) if change.site is not None else None
            new = getattr(current, name) if current is not None else False
            changes[name] = (_plain(old), _plain(new))
        kind = change.kind.value
        if change.kind is Kind.PATCH:
            kind = "leave" if current is None else "update"
        self.sample.append(SampleChange(change.user_id, kind, changes))

    def count(self, stats: DiffStats) -> None:
        self.stats = stats
        self.creates = stats.creates
        self.updates = stats.updates
        self.leaves = stats.leaves
        self.unchanged = stats.unchanged
        self.scanned = stats.scanned
        self.by_field = dict(stats.by_field)


def update_fields(by_field: Mapping[str, int], leaves: int) -> dict[str, int]:
    """`by_field` counts a leave as an `in_guild` write; the updates alone, per field."""
    counts = dict(by_field)
    if leaves:
        counts["in_guild"] = counts.get("in_guild", 0) - leaves
    return {name: n for name, n in counts.items() if n > 0}


def _plain(value: Any) -> Any:
    return sorted(value) if isinstance(value, frozenset) else value
