"""A run's tally: how many of its items are still queued or in flight, and how each ended.

Items are counted only when the site confirmed them (or they were settled as bad, failed or
skipped), so a cancelled run never reports half-written progress.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from guild_sync.engine.progress import RunFinished

OUTCOMES = ("created", "updated", "left", "skipped", "failed")
"""How a settled item ended; `unchanged` is counted by the diff, not by settling."""


@dataclass(eq=False)
class Run:
    run_id: str
    kind: str
    trigger: str
    started: float = field(default_factory=time.monotonic)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys((*OUTCOMES, "unchanged"), 0)
    )
    outstanding: int = 0
    deleted_roles: int = 0
    leaves_withheld: int = 0
    """Leaves found but not written: a sample of them is still in the guild (leavers.py)."""
    report: RunFinished | None = None
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._idle.set()

    @property
    def is_events(self) -> bool:
        return self.kind == "events"

    def adopt(self, items: int = 1) -> None:
        """Take responsibility for items now queued for this run."""
        self.outstanding += items
        if self.outstanding:
            self._idle.clear()

    def release(self, items: int = 1) -> None:
        """Give up items (abandoned, or handed to another run) without counting them."""
        self.outstanding -= items
        if self.outstanding <= 0:
            self.outstanding = 0
            self._idle.set()

    def settle(self, outcome: str, items: int = 1) -> None:
        self.counts[outcome] += items
        self.release(items)

    async def drained(self) -> None:
        await self._idle.wait()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started
