"""Single-flight locks between real OS processes, expiry after SIGKILL, renewal and loss."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from guild_sync.journal import LockBusy, process_owner

from .conftest import Store
from .hold_lock import LineChild

LINE_TIMEOUT = 15.0
EVENTUALLY = 10.0
"""How long past its deadline something may come on a loaded machine before it counts as never."""
POLL = 0.02
CLOCK_SLACK = 0.002
"""Redis reports a lock's remaining time in whole milliseconds."""


async def start_holder(store: Store, name: str, owner: str, ttl: float) -> LineChild:
    """A `hold_lock` child process, driven line by line over its stdin and stdout."""
    return await LineChild.start(
        "tests.journal.hold_lock", store.url, store.namespace, name, owner, str(ttl),
        within=LINE_TIMEOUT,
    )  # fmt: skip


@pytest.fixture
async def processes() -> AsyncIterator[list[LineChild]]:
    started: list[LineChild] = []
    yield started
    for child in started:
        await child.kill()


async def test_only_one_of_several_racing_processes_gets_the_lock(
    store: Store, processes: list[LineChild]
) -> None:
    owners = [f"bot-{index}" for index in range(3)]
    children = await asyncio.gather(
        *(start_holder(store, "users", owner, ttl=10.0) for owner in owners)
    )
    processes.extend(children)
    for child in children:
        child.go()

    answers = await asyncio.gather(*(child.line_starting("ACQUIRED", "BUSY") for child in children))

    winners = [
        (owner, child)
        for owner, child, answer in zip(owners, children, answers, strict=True)
        if answer == "ACQUIRED"
    ]
    assert len(winners) == 1, answers
    [(owner, winner)] = winners
    assert sorted(answers) == ["ACQUIRED", f"BUSY {owner}", f"BUSY {owner}"]

    journal = await store.open()
    assert await journal.acquire("users", owner="parent", ttl=10.0) is None
    holder = await journal.holder("users")
    assert holder is not None and holder.owner == owner
    assert 0 < holder.expires_in <= 10.0

    await winner.finish()
    lease = await journal.acquire("users", owner="parent", ttl=10.0)
    assert lease is not None
    await lease.release()


async def test_a_killed_holders_lock_expires_after_its_ttl(
    store: Store, processes: list[LineChild]
) -> None:
    ttl = 1.5
    child = await start_holder(store, "roles", "doomed-bot", ttl=ttl)
    processes.append(child)
    child.go()
    answer = await child.line_starting("ACQUIRED", "BUSY")
    assert answer == "ACQUIRED", child.report("did not take the free lock")
    journal = await store.open()

    await child.kill()
    read_at = time.monotonic()
    dead = await journal.holder("roles")
    assert dead is not None and dead.owner == "doomed-bot"
    assert 0 < dead.expires_in <= ttl, "a dead holder's lock must end within its ttl"
    # The store's expiry, on this clock: no earlier than this (the store read its clock after
    # read_at); CLOCK_SLACK covers Redis' whole milliseconds.
    expires_at = read_at + dead.expires_in - CLOCK_SLACK

    refused_before_expiry = 0
    lease = None
    while lease is None:
        assert time.monotonic() < expires_at + EVENTUALLY, (
            f"lock still held {EVENTUALLY:g} s after its killed holder's ttl ran out"
        )
        lease = await journal.acquire("roles", owner="survivor", ttl=ttl)
        answered_at = time.monotonic()
        if lease is None:
            if answered_at < expires_at:
                refused_before_expiry += 1
            await asyncio.sleep(POLL)

    assert answered_at >= expires_at, "the lock was taken before its ttl ran out"
    assert refused_before_expiry >= 1, "no try came before the expiry (machine too slow?)"
    holder = await journal.holder("roles")
    assert holder is not None and holder.owner == "survivor"
    await lease.release()


async def test_renewal_keeps_a_lock_held_past_its_ttl(store: Store) -> None:
    ttl = 1.0
    journal = await store.open()
    other = await store.open()

    async with journal.lock("roles", owner="bot-a", ttl=ttl) as lease:
        first = await other.holder("roles")
        assert first is not None and first.owner == "bot-a"
        first_expiry = time.monotonic() + first.expires_in + CLOCK_SLACK  # no later than this
        # Poll the store until a read that began after that first expiry still finds bot-a
        # holding the lock: only renewals can have pushed its expiry that far.
        while True:
            read_at = time.monotonic()
            holder = await other.holder("roles")
            assert holder is not None and holder.owner == "bot-a", "the held lock lapsed"
            assert not lease.lost, lease.lost_reason
            if read_at > first_expiry:
                break
            await asyncio.sleep(POLL)

        assert not lease.lost
        assert await other.acquire("roles", owner="bot-b", ttl=ttl) is None
        with pytest.raises(LockBusy) as busy:
            async with other.lock("roles", owner="bot-b", ttl=ttl):
                pytest.fail("a held lock was taken")
        assert busy.value.holder is not None and busy.value.holder.owner == "bot-a"

    second = await other.acquire("roles", owner="bot-b", ttl=ttl)
    assert second is not None
    await second.release()


async def test_a_lease_taken_over_reports_itself_lost(store: Store) -> None:
    ttl = 0.6
    journal = await store.open()
    other = await store.open()
    lease = await journal.acquire("users", owner="bot-a", ttl=ttl)
    assert lease is not None

    store.delete_lock("users")
    usurper = await other.acquire("users", owner="bot-b", ttl=10.0)
    assert usurper is not None
    await asyncio.wait_for(lease.wait_lost(), timeout=ttl + EVENTUALLY)

    # Lost because its renewal was refused, not because renewals kept failing.
    assert lease.lost and lease.lost_reason == "it expired or another process took it over"
    await lease.release()
    holder = await other.holder("users")
    assert holder is not None and holder.owner == "bot-b"
    await usurper.release()
    assert await other.holder("users") is None


async def test_a_lock_that_would_never_expire_does_not_block_forever(store: Store) -> None:
    journal = await store.open()
    store.plant_everlasting_lock("roles")

    lease = await journal.acquire("roles", owner="bot-a", ttl=5.0)

    assert lease is not None
    holder = await journal.holder("roles")
    assert holder is not None and holder.owner == "bot-a" and holder.expires_in <= 5.0
    if store.backend == "redis":  # garbage without TTL is set aside; SQLite's is only too far ahead
        [notice] = journal.take_notices()
        assert "without expiry" in notice.reason
        assert [entry[:2] for entry in store.quarantined()] == [("lock", "roles")]
    await lease.release()


def test_process_owners_differ_for_each_process_lifetime() -> None:
    assert process_owner() != process_owner()
