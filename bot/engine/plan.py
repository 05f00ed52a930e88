"""What a dry run reports: the writes a sync would make, counted, with a small sample."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.engine.diff import DiffStats, Kind, UserChange
from bot.engine.guild import GuildState

SAMPLE_SIZE = 10


@dataclass(frozen=True)
class SampleChange:
    user_id: int
    kind: str
    changes: dict[str, tuple[Any, Any]]
    """field -> (site value, guild value); for a create only the guild values (site None)."""


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
