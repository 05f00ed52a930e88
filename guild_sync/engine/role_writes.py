"""Roles the bot is writing to the site right now, so member writes naming them can wait.

Role events are written at once, outside the queue, while a member's write waits only the
queue's linger. On a slow site the member's write could arrive first and be refused ("Role with
ID … does not exist"): a record the site rejects for its content is never retried, so the
member would keep the wrong roles until the next full sync. A chunk naming a role still being
written waits for that write to settle (landed or failed) before it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterable, Iterator


class RoleWrites:
    def __init__(self) -> None:
        self._writing: Counter[int] = Counter()
        self._settled = asyncio.Event()
        self.waiting = 0
        """Chunks waiting for a role write now."""

    def begin(self, role_id: int) -> None:
        """A write of this role is coming; call it as soon as the role event is seen."""
        self._writing[role_id] += 1

    def end(self, role_id: int) -> None:
        self._writing[role_id] -= 1
        if self._writing[role_id] <= 0:
            del self._writing[role_id]
            self._settled.set()
            self._settled = asyncio.Event()

    @contextlib.contextmanager
    def writing(self, role_id: int) -> Iterator[None]:
        self.begin(role_id)
        try:
            yield
        finally:
            self.end(role_id)

    async def wait_for(self, role_ids: Iterable[int]) -> None:
        """Return once none of `role_ids` is being written."""
        wanted = set(role_ids)
        while not wanted.isdisjoint(self._writing):
            self.waiting += 1
            try:
                await self._settled.wait()
            finally:
                self.waiting -= 1
