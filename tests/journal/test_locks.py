"""Single-flight locks between real OS processes, expiry after SIGKILL, renewal and loss."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest

from guild_sync.journal import LockBusy, process_owner

from .conftest import Store

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LINE_TIMEOUT = 15.0
EVENTUALLY = 10.0
"""How long past its deadline something may come on a loaded machine before it counts as never."""
POLL = 0.02
CLOCK_SLACK = 0.002
"""Redis reports a lock's remaining time in whole milliseconds."""


class LockProcess:
    """A `hold_lock` child process, driven line by line over its stdin and stdout."""

    def __init__(self, process: asyncio.subprocess.Process, owner: str):
        self.process = process
        self.owner = owner

    @classmethod
    async def start(cls, store: Store, name: str, owner: str, ttl: float) -> LockProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.journal.hold_lock",
            store.url,
            store.namespace,
            name,
            owner,
            str(ttl),
            cwd=PROJECT_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        child = cls(process, owner)
        assert await child.read_line() == "READY"
        return child

    async def read_line(self) -> str:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), LINE_TIMEOUT)
        return line.decode().strip()

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")

    async def finish(self) -> str:
        """Close stdin: a holder releases the lock and reports; returns its last line."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        line = await self.read_line()
        await asyncio.wait_for(self.process.wait(), LINE_TIMEOUT)
        return line

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)


@pytest.fixture
async def processes() -> list[LockProcess]:
    started: list[LockProcess] = []
    yield started
    for child in started:
        child.kill()
        await asyncio.wait_for(child.process.wait(), LINE_TIMEOUT)


async def test_only_one_of_several_racing_processes_gets_the_lock(
    store: Store, processes: list[LockProcess]
) -> None:
    children = await asyncio.gather(
        *(LockProcess.start(store, "users", f"bot-{index}", ttl=10.0) for index in range(3))
    )
    processes.extend(children)
    for child in children:
        child.go()

    answers = await asyncio.gather(*(child.read_line() for child in children))

    winners = [
        child for child, answer in zip(children, answers, strict=True) if answer == "ACQUIRED"
    ]
    assert len(winners) == 1, answers
    winner = winners[0]
    assert sorted(answers) == ["ACQUIRED", f"BUSY {winner.owner}", f"BUSY {winner.owner}"]

    journal = await store.open()
    assert await journal.acquire("users", owner="parent", ttl=10.0) is None
    holder = await journal.holder("users")
    assert holder is not None and holder.owner == winner.owner
    assert 0 < holder.expires_in <= 10.0

    assert await winner.finish() == "RELEASED"
    lease = await journal.acquire("users", owner="parent", ttl=10.0)
    assert lease is not None
    await lease.release()


async def test_a_killed_holders_lock_expires_after_its_ttl(
    store: Store, processes: list[LockProcess]
) -> None:
    ttl = 1.5
    child = await LockProcess.start(store, "roles", "doomed-bot", ttl=ttl)
    processes.append(child)
    child.go()
    assert await child.read_line() == "ACQUIRED"
    journal = await store.open()

    child.kill()
    await asyncio.wait_for(child.process.wait(), LINE_TIMEOUT)
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
