"""Releasing a lease while its renewal is on the wire: the renewer must stop all the same.

A store call can swallow a cancellation. redis-py sends every command through
`asyncio.wait_for` (its socket timeout), and on Python 3.11 `wait_for` returns the inner
result when the cancellation comes after the send finished but before `wait_for` resumed. A
release landing there used to leave the renewer renewing forever and `release()` waiting for
it forever (the lost-lease e2e test's second process hung so, holding the lock). The stores
here make that moment certain instead of waiting for it to happen by chance.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from guild_sync.journal import Lease, LockHolder
from guild_sync.journal.records import utcnow

TTL = 60.0
"""Renewals every 20 s: only the first one, due at once, happens during a test."""
BOUND = 5.0
"""Only so a broken lease fails instead of waiting forever; a working one needs no wall time.
Shorter than the renewal interval, so the cleanup after a failure cannot meet a renewal."""


class SwallowingStore:
    """A store whose renewal completes even when cancelled, as a redis-py command can.

    `via_wait_for` swallows it the way redis-py does on Python 3.11 (a finished send inside
    `asyncio.wait_for`; 3.12's `wait_for` no longer does); otherwise it swallows it outright,
    which fails an unfixed lease on any Python version.
    """

    def __init__(self, *, via_wait_for: bool) -> None:
        self.via_wait_for = via_wait_for
        self.extends = 0
        self.releases = 0
        self.sent = asyncio.Event()
        self.answer = asyncio.Event()

    async def extend_lock(self, name: str, token: str, ttl: float) -> bool:
        self.extends += 1
        if self.via_wait_for:
            await asyncio.wait_for(self._send(), timeout=TTL)
        else:
            self.sent.set()
            # What a store call that finishes anyway looks like to its caller.
            with contextlib.suppress(asyncio.CancelledError):
                await self.answer.wait()
        return True

    async def _send(self) -> None:
        """Finishes at once, as a write to a socket with room does; the caller wakes on it."""
        self.sent.set()

    async def release_lock(self, name: str, token: str) -> bool:
        self.releases += 1
        return True


def renewing_now(store: SwallowingStore) -> Lease:
    """A lease whose first renewal is due at once (confirmed a renewal interval ago)."""
    holder = LockHolder(name="users", owner="bot", acquired_at=utcnow(), expires_in=TTL, token="t")
    return Lease(store, holder, TTL, asyncio.get_running_loop().time() - TTL / 3)


@pytest.mark.parametrize("via_wait_for", [True, False], ids=["wait_for", "outright"])
async def test_a_release_during_a_renewal_that_swallows_the_cancel_stops_renewing(
    via_wait_for: bool,
) -> None:
    store = SwallowingStore(via_wait_for=via_wait_for)
    lease = renewing_now(store)
    await store.sent.wait()  # the renewal's send is done; its caller has not resumed yet

    # Not cancelled at the bound: cancelling a release cancels the renewer it waits for too,
    # which would hide a renewer that ignored the release's own cancellation.
    releasing = asyncio.create_task(lease.release())
    await asyncio.wait([releasing], timeout=BOUND)
    try:
        assert releasing.done(), "release() waits for a renewer that goes on renewing"
    finally:
        releasing.cancel()
        await asyncio.wait([releasing])

    assert lease._renewer.done()
    assert (store.extends, store.releases) == (1, 1)
    assert not lease.lost


async def test_a_caller_cancelled_while_releasing_is_cancelled() -> None:
    """A bound around release() must be able to fire: the caller's cancellation was
    suppressed along with the renewer's, and a timed-out release looked like a success."""
    store = SwallowingStore(via_wait_for=False)  # its renewal never answers
    lease = renewing_now(store)
    await store.sent.wait()
    releasing = asyncio.create_task(lease.release())
    await asyncio.sleep(0)  # release() cancelled the renewer, which swallowed it and waits

    releasing.cancel()
    await asyncio.wait([releasing], timeout=BOUND)

    assert releasing.cancelled()
    assert store.releases == 0  # not released: the lock expires on its own
    store.answer.set()
    await asyncio.wait_for(lease._renewer, BOUND)  # and the renewer still ends, unrenewed
    assert store.extends == 1
