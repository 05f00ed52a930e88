"""How a lease reacts to its store failing: branch logic, so the store here is a stand-in."""

from __future__ import annotations

import asyncio
import time

from bot.journal import Lease, LockHolder
from bot.journal.records import utcnow


class FlakyStore:
    """Answers renewals from a script: True/False, or an exception to raise."""

    def __init__(self, answers: list[bool | Exception]):
        self.answers = answers
        self.extends = 0
        self.releases = 0
        self.script_played = asyncio.Event()

    async def extend_lock(self, name: str, token: str, ttl: float) -> bool:
        self.extends += 1
        answer = self.answers.pop(0) if self.answers else True
        if not self.answers:
            self.script_played.set()
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def release_lock(self, name: str, token: str) -> bool:
        self.releases += 1
        return True


def lease_on(store: FlakyStore, ttl: float) -> Lease:
    holder = LockHolder(name="users", owner="bot", acquired_at=utcnow(), expires_in=ttl, token="t")
    return Lease(store, holder, ttl, asyncio.get_running_loop().time())


async def test_one_failed_renewal_is_retried_without_losing_the_lease() -> None:
    store = FlakyStore([ConnectionError("blip"), True, True])
    lease = lease_on(store, ttl=0.3)

    await asyncio.wait_for(store.script_played.wait(), timeout=2)

    assert not lease.lost and store.extends == 3
    await lease.release()
    assert store.releases == 1


async def test_renewals_failing_until_expiry_lose_the_lease_before_it_expires() -> None:
    ttl = 0.6
    store = FlakyStore([ConnectionError("down")] * 10)
    started = time.monotonic()
    lease = lease_on(store, ttl=ttl)

    await asyncio.wait_for(lease.wait_lost(), timeout=ttl * 2)

    assert time.monotonic() - started < ttl
    assert "down" in (lease.lost_reason or "")
    await lease.release()
    assert store.releases == 0


async def test_a_refused_renewal_loses_the_lease_at_once() -> None:
    store = FlakyStore([False])
    lease = lease_on(store, ttl=0.3)

    await asyncio.wait_for(lease.wait_lost(), timeout=0.3)

    assert store.extends == 1
    await lease.release()
    assert store.releases == 0
