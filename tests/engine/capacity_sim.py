"""The adaptive window (guild_sync/engine/limiter.py) against the sandbox site's cost model on a
virtual clock, without HTTP: chunks go out as SyncEngine._dispatch sends them (acquire a slot,
stamp, serve, record, release), each served by CostModel.serve on tests/sandbox_site's VirtualClock.

The clock moves only when every chunk in flight waits on it or for a worker and the dispatcher
waits for a slot, so a run of many modelled minutes takes milliseconds and is exact.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.site.cost import CostConfig, CostModel, Work, bulk_patch_work
from guild_sync.engine.limiter import AdaptiveWindow
from tests.sandbox_site.virtual_clock import VirtualClock, settle

ROLE_IDS = [11, 12]


def role_removal_chunks(members: int = 80_000, chunk_size: int = 1000) -> list[tuple[int, Work]]:
    """The role removal's bulk_patch chunks as the engine sends them: `{id, roles}` with the two
    roles each member keeps (site-api.md's measured run)."""
    chunks = []
    for start in range(0, members, chunk_size):
        ids = range(start, min(members, start + chunk_size))
        chunks.append((len(ids), bulk_patch_work([{"id": i, "roles": ROLE_IDS} for i in ids])))
    return chunks


@dataclass
class Played:
    wall_s: float
    cpu_s: float
    """The site's modelled CPU during the run (a `hog` request counts once it is answered)."""
    peak_in_flight: int
    """The most chunks in flight at once (each is at the site, served or queued, until its
    answer is recorded)."""
    window: AdaptiveWindow
    limits: list[int] = field(default_factory=list)
    """The window's limit when each chunk went out."""


class Simulation:
    """One modelled site of `workers` and a window of `maximum` on one virtual clock."""

    def __init__(self, *, workers: int, maximum: int) -> None:
        self.clock = VirtualClock()
        self.workers = workers
        self.model = CostModel(CostConfig(model="real", workers=workers), self.clock)
        self.window = AdaptiveWindow(maximum, clock=self.clock.now)
        self._tasks: set[asyncio.Task[None]] = set()
        self._hogs = 0

    def hog(self, seconds: float) -> None:
        """Another client's request takes a worker for `seconds` (from the next free one)."""
        self._hogs += 1
        self._spawn(self.model.serve(Work(seconds)))

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def play(
        self,
        chunks: list[tuple[int, Work]],
        before_chunk: Callable[[int, Simulation], None] | None = None,
    ) -> Played:
        """Send `chunks` through the window; `before_chunk(index, self)` runs as each goes out."""
        window, model, clock = self.window, self.model, self.clock
        pending = deque(enumerate(chunks))
        limits: list[int] = []
        peak = 0
        cpu_before = model.cpu_s
        started = clock.time

        async def send(items: int, work: Work) -> None:
            nonlocal peak
            stamp = window.sent()
            limits.append(window.limit)
            try:
                peak = max(peak, window.in_flight)
                await model.serve(work)
                window.record(stamp, items, healthy=True)
            finally:
                window.release()

        async def dispatch() -> None:
            while pending:
                await window.acquire()
                index, (items, work) = pending.popleft()
                if before_chunk is not None:
                    before_chunk(index, self)
                self._spawn(send(items, work))

        dispatcher = asyncio.create_task(dispatch())

        def settled() -> bool:
            free = self.workers - model.busy
            return (
                clock.sleeping + model.queued == window.in_flight + self._hogs
                and (not pending or window.in_flight >= window.limit)
                and (model.queued == 0 or free == 0)
            )

        while pending or window.in_flight:
            await settle(settled)
            clock.advance()
        await dispatcher
        return Played(clock.time - started, model.cpu_s - cpu_before, peak, window, limits)

    def close(self) -> None:
        self.clock.close()
