"""How a lease reacts to its store failing: branch logic, so the store here is a stand-in.

The lease's decisions are about time (renew every ttl/3, give up when the next try would come
after the expiry), so these tests run on an event loop with a virtual clock: it jumps to the
next timer whenever every task waits, instead of sleeping. Each renewal then happens exactly at
its loop time, whatever the machine's load, and the tests take no wall-clock time; assertions
compare the lease's loop times with its expiry, not the duration of a run.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any

import pytest

from guild_sync.journal import Lease, LockHolder
from guild_sync.journal.records import utcnow

TIMEOUT = 60.0
"""A bound on virtual time, only so a broken lease fails instead of waiting forever."""


class JumpingSelector(selectors.DefaultSelector):
    """A selector that never blocks: a wait for the next timer moves the clock there."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("deadlock: every task waits and no timer is scheduled")
        self.clock += timeout
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual = JumpingSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.clock


def run_virtual(main: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        runner.run(main)


class FlakyStore:
    """Answers renewals from a script: True/False, or an exception to raise; it notes the
    loop time of every renewal, and so of the lease's decision that follows it at once."""

    def __init__(self, answers: list[bool | Exception]):
        self.answers = answers
        self.extends: list[float] = []
        self.releases = 0
        self.script_played = asyncio.Event()

    async def extend_lock(self, name: str, token: str, ttl: float) -> bool:
        self.extends.append(asyncio.get_running_loop().time())
        answer = self.answers.pop(0) if self.answers else True
        if not self.answers:
            self.script_played.set()
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def release_lock(self, name: str, token: str) -> bool:
        self.releases += 1
        return True


def lease_on(store: FlakyStore, ttl: float, confirmed_at: float) -> Lease:
    holder = LockHolder(name="users", owner="bot", acquired_at=utcnow(), expires_in=ttl, token="t")
    return Lease(store, holder, ttl, confirmed_at)


async def lost_at(lease: Lease) -> float:
    """The loop time at which the lease reported itself lost."""
    await asyncio.wait_for(lease.wait_lost(), timeout=TIMEOUT)
    return asyncio.get_running_loop().time()


def test_the_virtual_clock_moves_only_by_the_timers() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(1000)
        assert loop.time() - start == pytest.approx(1000)

    run_virtual(main())


def test_one_failed_renewal_is_retried_without_losing_the_lease() -> None:
    async def main() -> None:
        ttl = 0.3
        store = FlakyStore([ConnectionError("blip"), True, True])
        confirmed_at = asyncio.get_running_loop().time()
        lease = lease_on(store, ttl, confirmed_at)

        await asyncio.wait_for(store.script_played.wait(), timeout=TIMEOUT)

        assert not lease.lost and len(store.extends) == 3
        # Renewing every ttl/3, retried once and renewed twice: always inside the ttl.
        previous = [confirmed_at, *store.extends[:-1]]
        gaps = [b - a for a, b in zip(previous, store.extends, strict=True)]
        assert gaps == pytest.approx([ttl / 3] * 3)
        await lease.release()
        assert store.releases == 1

    run_virtual(main())


def test_renewals_failing_until_expiry_lose_the_lease_before_it_expires() -> None:
    async def main() -> None:
        ttl = 0.6
        interval = ttl / 3
        store = FlakyStore([ConnectionError("down")] * 10)
        confirmed_at = asyncio.get_running_loop().time()
        lease = lease_on(store, ttl, confirmed_at)
        expires_at = confirmed_at + ttl  # no renewal succeeded, so this expiry stands

        when_lost = await lost_at(lease)

        assert "down" in (lease.lost_reason or "")
        *retried, last = store.extends
        assert retried, "the lease gave up at the first failure, with time left to retry"
        # Retried while the next try still came before the expiry, and gave up at the last
        # try that did not: reported lost before the expiry, in the step of the last failure.
        assert all(attempt + interval < expires_at for attempt in retried)
        assert last + interval >= expires_at
        assert when_lost == last < expires_at
        await lease.release()
        assert store.releases == 0

    run_virtual(main())


def test_a_refused_renewal_loses_the_lease_at_once() -> None:
    async def main() -> None:
        ttl = 0.3
        store = FlakyStore([False])
        confirmed_at = asyncio.get_running_loop().time()
        lease = lease_on(store, ttl, confirmed_at)

        when_lost = await lost_at(lease)

        # Lost at the first renewal, the one refused, with no retry and long before expiry.
        assert store.extends == pytest.approx([confirmed_at + ttl / 3])
        assert when_lost == store.extends[0]
        assert lease.lost_reason == "it expired or another process took it over"
        await lease.release()
        assert store.releases == 0

    run_virtual(main())
