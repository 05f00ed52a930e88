"""Modelled time that moves only when a test moves it, for the cost model's workers (cost.py).

A test hands `VirtualClock()` to `CostModel` or `SandboxSite(clock=...)`: every modelled wait is
then a future the test wakes by advancing the clock, so a run of many modelled minutes takes
milliseconds and its timings are exact, whatever the machine's load.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

from bot.sandbox.site.cost import CostModel


class VirtualClock:
    def __init__(self) -> None:
        self.time = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.time + max(0.0, seconds), next(self._order), wake))
        await wake

    def close(self) -> None:
        for _, _, wake in self._sleepers:
            if not wake.done():
                wake.set_result(None)
        self._sleepers.clear()

    @property
    def sleeping(self) -> int:
        """Waits not yet woken."""
        return sum(not wake.done() for _, _, wake in self._sleepers)

    def advance(self, seconds: float | None = None) -> None:
        """Move on by `seconds`, or to the next wait's end, waking every wait that is due."""
        if seconds is None:
            if not self._sleepers:
                return
            self.time = max(self.time, self._sleepers[0][0])
        else:
            self.time += seconds
        while self._sleepers and self._sleepers[0][0] <= self.time:
            _, _, wake = heapq.heappop(self._sleepers)
            if not wake.done():
                wake.set_result(None)


async def settle(condition: Callable[[], bool], *, turns: int = 10_000) -> None:
    """Let the event loop run until `condition` holds (tasks have reached their next wait);
    a bounded number of loop turns, no wall-clock time."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the tasks did not settle")


def workers_settled(model: CostModel, clock: VirtualClock, clients: int) -> bool:
    """Every running client waits (on a worker or in its modelled time), and none waits for a
    worker while one is free: the moment to move the clock on."""
    free = model.config.workers - model.busy - model.restarting
    return clock.sleeping + model.queued == clients and (model.queued == 0 or free == 0)
