"""A gate that stops the site at a chosen point of a run, so a fault lands there by construction.

A scenario that means "kill the site a quarter into the role deletion" cannot poll a counter and
hope the run is still going: on a fast machine the run is over before the poll. Instead it arms
the gate (`POST /api/_sandbox/hold {"route": "PATCH /api/bot/users/bulk_patch", "after_items":
N}`), waits until the gate has tripped (`GET /api/_sandbox/hold`: `tripped`, `waiting`), injects
its fault while the run is certainly unfinished, and opens the gate (`DELETE /api/_sandbox/hold`)
or kills the site with the requests still held.

The first request on the route that arrives once the route has received `after_items` items
trips the gate; it and every later request on that route wait, their bodies read but not yet
counted or applied. The gate trips once: after it opens, the route flows freely until it is armed
again. A gate left shut opens by itself after `max_hold_s`, so a scenario that crashed cannot
hang the site.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

MAX_HOLD_S = 300.0


class Hold:
    def __init__(self) -> None:
        self.route: str | None = None
        self.after_items = 0
        self.max_hold_s = MAX_HOLD_S
        self.tripped = False
        self.items_before: int | None = None
        """How many items the route had received when the gate tripped."""
        self.waiting = 0
        self._open = asyncio.Event()
        self._open.set()

    def arm(self, route: str, after_items: int, *, max_hold_s: float = MAX_HOLD_S) -> None:
        if after_items < 0 or max_hold_s <= 0:
            raise ValueError("after_items must not be negative and max_hold_s must be positive")
        self.route, self.after_items, self.max_hold_s = route, after_items, max_hold_s
        self.tripped, self.items_before = False, None
        self._open = asyncio.Event()

    def release(self) -> None:
        """Open the gate: held requests go on, later ones pass, until the next `arm`."""
        self.route = None
        self._open.set()

    async def pass_through(self, route: str, received_items: int) -> None:
        """Wait at the gate if it is armed for `route` and the route has had its items."""
        if route != self.route or self._open.is_set():
            return
        if not self.tripped:
            if received_items < self.after_items:
                return
            self.tripped, self.items_before = True, received_items
        self.waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._open.wait(), self.max_hold_s)
        finally:
            self.waiting -= 1

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "after_items": self.after_items,
            "armed": not self._open.is_set(),
            "tripped": self.tripped,
            "items_before": self.items_before,
            "waiting": self.waiting,
        }
