"""A run whose lease is lost stops sending: two bot processes, one real Redis, an outage that
only the first one sees.

The first process is the real bot in this process (loopback Discord, sandbox site); it reaches
Redis through a proxy the test cuts. The second is a child process (second_process.py) that
reaches the same Redis directly and tries, all along, to take the same lock, writing to the
site the moment it has it. The run is mid-way by construction: the site's hold gate keeps one
of its chunks in flight, and with one chunk in flight allowed the bot cannot send another
until the gate opens.

What must hold: the first process notices the lost lease before the lease expires in Redis,
stops sending (the chunk already in flight is answered, nothing new goes out), says so in the
log channel and in its live message, and the journal records the run interrupted with the
reason once Redis answers again. The second process takes the lock only after that, and when
it does the site has no write of the first one in flight and receives none afterwards: the
site's own counts, read by the second process before it writes, say so.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from bot.sandbox.site import DEFAULT_TOKEN
from guild_sync.exts.sync._runs import COMMAND, STARTUP
from guild_sync.journal import INTERRUPTED, open_journal
from tests.e2e.harness import NO_STARTUP, Harness, eventually, running_bot, stale_site
from tests.journal.hold_lock import LineChild
from tests.redis_outage import Outage, RedisProxy, redis_with_proxy

pytestmark = pytest.mark.timeout(120)

BULK_PATCH = "PATCH /api/bot/users/bulk_patch"
LEASE_TTL_S = 3.0
"""Short, so the test waits out an expiry in seconds; renewals run every ttl/3."""
CHUNK = 10
MEMBERS = 60
HELD_AFTER = 2 * CHUNK
"""The gate holds the third chunk: two chunks written, four to go."""
WITHIN = 30.0
"""A bound for things that come after the lease's expiry, only so a broken run fails."""


async def start_second_process(redis_url: str, site_url: str, user_id: int) -> LineChild:
    """second_process.py, driven line by line (see LineChild: a failure says what it did)."""
    return await LineChild.start(
        "tests.e2e.second_process", redis_url, "users", str(LEASE_TTL_S), site_url,
        DEFAULT_TOKEN, str(user_id), within=WITHIN,
    )  # fmt: skip


def lost_message(text: str) -> bool:
    return text.startswith("⚠️ **User sync**") and "lost its lease" in text


async def first_of(h: Harness, second: LineChild) -> str:
    """Which comes first: the bot saying its lease is lost, or the second process's lock."""
    said = asyncio.create_task(h.wait_for_log(lost_message, within=WITHIN))
    took = asyncio.create_task(second.line_starting("ACQUIRED"))
    done, pending = await asyncio.wait({said, took}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    winner = done.pop()
    winner.result()  # a timeout or a dead child fails here
    return "bot said lost" if winner is said else f"second process: {winner.result()}"


@pytest.mark.parametrize("outage", ["refused", "silent"])
async def test_a_run_whose_lease_is_lost_stops_before_another_process_may_write(
    tmp_path: Path, outage: Outage
) -> None:
    """Refused: Redis stopped (connections reset and refused). Silent: a partition, where
    nothing is refused and every command waits for the client's socket timeout (5 s, longer
    than the lease): the lease must not wait for it."""
    async with (
        redis_with_proxy(tmp_path) as (server, proxy),
        running_bot(
            tmp_path,
            members=MEMBERS,
            seed_site=False,
            prepare=stale_site(every=1),
            settings={
                **NO_STARTUP,
                "SYNC_STATE_URL": proxy.url,
                "SYNC_CHUNK_SIZE": str(CHUNK),
                "SYNC_MAX_IN_FLIGHT": "1",
                # Every user is stale on purpose, so the mass-update guard would ask first.
                "SYNC_GUARD_UPDATE_SHARE": "1",
            },
        ) as h,
    ):
        await outage_during_a_run(h, server.url, proxy, outage)


async def outage_during_a_run(
    h: Harness, redis_url: str, proxy: RedisProxy, outage: Outage
) -> None:
    book, runs = h.cog.book, h.cog.runs
    book.lease_ttl = LEASE_TTL_S
    marker_user = h.guild.expected_users()[-1].id
    second = await start_second_process(redis_url, h.site.url, marker_user)
    try:
        h.site.hold.arm(BULK_PATCH, after_items=HELD_AFTER)
        run = asyncio.create_task(runs.run("users", trigger=STARTUP))
        await eventually(lambda: h.site.hold.waiting == 1, within=WITHIN)
        patch = h.site.stats.routes[BULK_PATCH]
        sent_before_outage = patch.requests  # two answered, the third held
        assert (sent_before_outage, patch.in_flight) == (3, 1)

        second.go()
        busy = await second.line_starting("BUSY")
        assert busy == f"BUSY {book.owner}", second.report("must be kept out by our lease")
        await proxy.cut(outage)

        first = await first_of(h, second)
        assert first == "bot said lost", f"the second process took the lock first: {first}"
        # Told while the held chunk is still the only one sent past the gate.
        assert (patch.requests, patch.in_flight) == (sent_before_outage, 1)
        said = next(text for text in h.log_texts() if lost_message(text))
        assert "renewal kept failing" in said, said

        h.site.hold.release()  # the chunk already in flight is answered
        report = await asyncio.wait_for(run, WITHIN)
        assert report is not None and report.status == "interrupted", report
        assert (report.updated, report.failed) == (3 * CHUNK, 0), report
        assert "lost its lease" in report.error and "renewal kept failing" in report.error
        summary = await h.wait_for_summary("User sync")
        assert summary.startswith("⏹️ **User sync**"), summary
        assert "interrupted" in summary and "lost its lease" in summary, summary
        assert "renewal kept failing" in summary, summary

        took = await second.line_starting("ACQUIRED", within=WITHIN)
        counts = json.loads(took.removeprefix("ACQUIRED "))
        # The site's own counts when the second process held the lock, before its own write:
        # the first process had nothing in flight and had sent its last request (its run
        # has ended now, so nothing of it can come later either).
        assert counts == {
            "bulk_patch_requests": sent_before_outage,
            "user_writes_in_flight": 0,
        }, counts
        await second.line_starting("WROTE")
        assert patch.requests == sent_before_outage + 1  # the second process's one write

        await proxy.restore()
        await asyncio.wait_for(book.recorded(), WITHIN)
        async with await open_journal(redis_url) as journal:
            stored = await journal.get_run(report.run_id)
            breaker = await journal.load_breaker("users")
        assert stored is not None and stored.status == INTERRUPTED, stored
        assert stored.last_error is not None and "renewal kept failing" in stored.last_error
        assert "lost its lease" in stored.last_error
        assert stored.done == 3 * CHUNK, stored
        # An interrupted automatic run counts as a failure, once.
        assert (breaker.consecutive_failures, breaker.last_run_id) == (1, report.run_id)
        await second.finish()  # releases the lock it holds and exits
    finally:
        h.site.hold.release()
        await second.kill()


async def test_a_manual_run_whose_lease_was_taken_over_stops_and_is_not_counted(
    tmp_path: Path,
) -> None:
    """The other way to lose a lease: it lapsed (a process paused longer than its ttl) and
    another process holds it now; the next renewal is refused. SQLite, the default store."""
    async with running_bot(
        tmp_path, members=MEMBERS, seed_site=False, prepare=stale_site(every=1),
        settings={**NO_STARTUP, "SYNC_CHUNK_SIZE": str(CHUNK), "SYNC_MAX_IN_FLIGHT": "1"},
    ) as h:  # fmt: skip
        book, runs = h.cog.book, h.cog.runs
        book.lease_ttl = LEASE_TTL_S
        moderator = h.cog.guild_state.guild.get_member(h.guild.moderator_id)
        h.site.hold.arm(BULK_PATCH, after_items=HELD_AFTER)
        run = asyncio.create_task(runs.run("users", trigger=COMMAND, actor=moderator))
        try:
            await eventually(lambda: h.site.hold.waiting == 1, within=WITHIN)
            patch = h.site.stats.routes[BULK_PATCH]
            sent = patch.requests

            state_url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
            async with await open_journal(state_url) as other:
                with sqlite3.connect(tmp_path / "state.sqlite3") as db:
                    db.execute("DELETE FROM leases WHERE name = 'users'")  # it lapsed
                usurper = await other.acquire("users", owner="usurper", ttl=60.0)
                assert usurper is not None

                said = await h.wait_for_log(lost_message, within=WITHIN)
                assert "another process took it over" in said.content, said.content
                assert (patch.requests, patch.in_flight) == (sent, 1)  # nothing new sent
                h.site.hold.release()
                report = await asyncio.wait_for(run, WITHIN)
                assert report is not None and report.status == "interrupted", report
                assert patch.requests == sent

                stored = await other.get_run(report.run_id)
                breaker = await other.load_breaker("users")
                holder = await other.holder("users")
                await usurper.release()
            assert stored is not None and stored.status == INTERRUPTED, stored
            assert "another process took it over" in (stored.last_error or "")
            # A moderator's run says nothing about automatic runs: not a breaker failure.
            assert breaker.consecutive_failures == 0, breaker
            assert holder is not None and holder.owner == "usurper"  # ours was never released
        finally:
            h.site.hold.release()
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
