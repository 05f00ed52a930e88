"""Each path of the sender against the sandbox site over loopback HTTP."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.sandbox.site import FaultConfig
from guild_sync.engine import BadRecords, ChunkDone, ChunkFailed, RateMeter, Retrying, RunFinished
from guild_sync.site.records import Role

from .conftest import BULK_PATCH, Rig, close_rig, make_rig, person, until

MOD = Role(100, "mod", 0, 0, 2)
HELPER = Role(101, "helper", 0, 0, 1)


async def test_a_patch_for_a_user_the_site_lacks_becomes_a_create(rig: Rig) -> None:
    rig.seed([MOD], [person(i) for i in range(1, 6)])
    rig.guild.add_role(MOD)
    for i in range(1, 7):
        rig.guild.add_member(person(i, f"renamed{i}", [100]))
        rig.engine.enqueue_member(i, {"name", "roles"})
    await asyncio.wait_for(rig.engine.flush(), 5)
    assert rig.mismatches() == []
    assert rig.engine.events.counts["created"] == 1
    assert rig.engine.events.counts["updated"] == 5
    assert rig.broken_bounds() == []


async def test_bad_records_are_isolated_reported_and_the_good_ones_land(rig: Rig) -> None:
    rig.seed([MOD], [person(i) for i in range(1, 21)])
    rig.guild.add_role(MOD)
    rig.guild.add_role(HELPER)  # the site lacks it: users sync before roles here on purpose
    for i in range(1, 26):  # 21..25 are creates
        rig.guild.add_member(person(i, f"new{i}", [100]))
    rig.guild.add_member(person(3, "x" * 33))  # over the site's 32 characters
    rig.guild.add_member(person(7, "seven", [100, 101]))
    rig.guild.add_member(person(23, "y" * 40))  # a bad create
    report = await asyncio.wait_for(rig.engine.sync_users(), 10)
    assert report.status == "partial"
    assert (report.failed, report.updated, report.created) == (3, 18, 4)
    bad = {bad_id: event.message for event in rig.of_type(BadRecords) for bad_id in event.ids}
    assert set(bad) == {3, 7, 23}
    assert "32" in bad[3] and "101" in bad[7]
    site = rig.site_users()
    assert site[3].name == "user3" and site[7].name == "user7" and 23 not in site
    assert all(site[i] == rig.guild.member(i) for i in range(1, 26) if i not in bad)
    assert rig.broken_bounds() == []  # bisecting never sends an empty or oversized request


async def test_injected_server_errors_rate_limits_and_resets_are_recovered() -> None:
    faults = FaultConfig(
        error_500=0.2, rate_limit_429=0.1, drop=0.1, retry_after=0.01, write_only=True, seed=3
    )
    rig, _ = await make_rig(faults=faults, attempts=10)
    try:
        rig.seed([MOD], [person(i) for i in range(1, 101)])
        rig.guild.add_role(MOD)
        for i in range(1, 121):
            rig.guild.add_member(person(i, f"n{i}", [100] if i % 2 else []))
        report = await asyncio.wait_for(rig.engine.sync_users(), 30)
        assert report.status == "finished", report
        assert rig.mismatches() == []
        assert rig.of_type(Retrying), "the faults should have forced retries"
        assert sum(rig.site.stats.faults.values()) >= 3
        assert rig.broken_bounds() == []  # retries stay inside the window
    finally:
        await close_rig(rig)


async def test_a_site_that_refuses_writes_fails_the_run_without_crashing_and_a_rerun_heals() -> (
    None
):
    rig, site = await make_rig(faults=FaultConfig(reject_writes=True), attempts=2)
    try:
        rig.seed([], [person(i) for i in range(1, 31)])
        for i in range(1, 31):
            rig.guild.add_member(person(i, f"n{i}"))
        report = await asyncio.wait_for(rig.engine.sync_users(), 20)
        assert (report.status, report.failed, report.updated) == ("failed", 30, 0)
        failed_ids = {i for event in rig.of_type(ChunkFailed) for i in event.ids}
        assert failed_ids == set(range(1, 31))
        assert "500" in rig.of_type(ChunkFailed)[0].error
        site.faults.configure(FaultConfig(), reseed=True)
        again = await asyncio.wait_for(rig.engine.sync_users(), 20)
        assert (again.status, again.updated) == ("finished", 30)
        assert rig.mismatches() == []
        assert rig.broken_bounds() == []
    finally:
        await close_rig(rig)


async def test_cancelling_mid_sync_counts_only_confirmed_writes_and_a_rerun_completes() -> None:
    rig, site = await make_rig(
        chunk_size=5, max_in_flight=1, faults=FaultConfig(slow=1.0, slow_delay=0.05)
    )
    try:
        rig.seed([], [person(i) for i in range(1, 201)])
        for i in range(1, 201):
            rig.guild.add_member(person(i, f"n{i}"))
        chunks_done = asyncio.Event()
        rig.engine.subscribe(lambda e: isinstance(e, ChunkDone) and chunks_done.set())
        task = asyncio.create_task(rig.engine.sync_users())
        await asyncio.wait_for(chunks_done.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        await asyncio.wait_for(rig.engine.hub.idle(), 5)
        (finished,) = rig.of_type(RunFinished)
        landed = sum(u.name.startswith("n") for u in rig.site_users().values())
        assert finished.status == "cancelled"
        assert 0 < finished.updated == landed < 200
        site.faults.configure(FaultConfig(), reseed=True)
        again = await asyncio.wait_for(rig.engine.sync_users(), 10)
        assert (again.status, again.updated, again.unchanged) == ("finished", 200 - landed, landed)
        assert rig.mismatches() == []
        assert rig.broken_bounds() == []
    finally:
        await close_rig(rig)


async def test_a_member_update_during_a_long_sync_ends_with_the_newer_value() -> None:
    rig, _ = await make_rig(
        chunk_size=5, max_in_flight=2, faults=FaultConfig(slow=1.0, slow_delay=0.02)
    )
    try:
        rig.seed([], [person(i) for i in range(1, 101)])
        for i in range(1, 101):
            rig.guild.add_member(person(i, f"sync{i}"))
        first_chunk = asyncio.Event()
        rig.engine.subscribe(lambda e: isinstance(e, ChunkDone) and first_chunk.set())
        task = asyncio.create_task(rig.engine.sync_users())
        await asyncio.wait_for(first_chunk.wait(), 5)
        for user_id in (1, 100):  # one already sent by the sync, one not reached yet
            rig.guild.update_member(person(user_id, "event-newer"))
            rig.engine.enqueue_member(user_id, {"name"})
        await asyncio.wait_for(task, 20)
        await asyncio.wait_for(rig.engine.flush(), 5)
        site = rig.site_users()
        assert site[1].name == site[100].name == "event-newer"
        assert rig.mismatches() == []
        assert rig.broken_bounds() == []  # event writes share the window with the sync's
    finally:
        await close_rig(rig)


async def test_the_window_grows_on_a_site_with_room_and_the_site_never_serves_more_at_once() -> (
    None
):
    # Every write waits 50 ms on the site, and writes overlap freely (no worker limit): each
    # extra chunk in flight doubles, then adds half, a third... of the throughput, far above
    # what the limiter asks of a step (limiter.GAIN_SHARE), so the window climbs to its maximum.
    faults = FaultConfig(slow=1.0, slow_delay=0.05, write_only=True)
    rig, site = await make_rig(chunk_size=4, max_in_flight=4, faults=faults)
    try:
        rig.seed([], [person(i) for i in range(1, 241)])
        for i in range(1, 241):
            rig.guild.add_member(person(i, f"n{i}"))
        assert rig.engine.window.limit == 1, "the window starts at one: reaching 4 means it grew"
        report = await asyncio.wait_for(rig.engine.sync_users(), 30)
        assert report.status == "finished"
        assert rig.mismatches() == []
        assert [d.limit for d in rig.engine.window.decisions][:3] == [2, 3, 4]
        assert site.stats.user_writes_peak_in_flight == 4  # reached, and never more
        assert rig.broken_bounds() == []
    finally:
        await close_rig(rig)


async def test_the_site_side_check_catches_a_window_that_lets_too_many_requests_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig, site = await make_rig(chunk_size=4, max_in_flight=2)
    try:
        rig.seed([], [person(i) for i in range(1, 41)])
        for i in range(1, 41):
            rig.guild.add_member(person(i, f"n{i}"))
        window = rig.engine.window

        async def acquire_without_waiting() -> None:
            window.in_flight += 1  # the deliberate bug: a window that never shuts

        monkeypatch.setattr(window, "acquire", acquire_without_waiting)
        site.hold.arm(BULK_PATCH, after_items=0)  # every write waits, so they overlap for sure
        task = asyncio.create_task(rig.engine.sync_users())
        await until(lambda: site.hold.waiting > 2)
        site.hold.release()
        report = await asyncio.wait_for(task, 10)
        assert report.status == "finished"
        peak = site.stats.user_writes_peak_in_flight
        assert peak > 2
        assert rig.broken_bounds() == [f"{peak} user writes in flight at once (maximum 2)"]
    finally:
        await close_rig(rig)


async def test_role_deletion_strips_holders_in_chunks_then_deletes_without_cascade(
    rig: Rig,
) -> None:
    rig.seed([MOD, HELPER], [person(i, roles=[100, 101]) for i in range(1, 51)])
    rig.seed([], [person(i, roles=[100], in_guild=False) for i in range(51, 56)])
    rig.guild.add_role(HELPER)  # the guild no longer has MOD
    for i in range(1, 51):
        rig.guild.add_member(person(i, roles=[100, 101]))
    report = await asyncio.wait_for(rig.engine.delete_role(100), 10)
    assert (report.status, report.updated, report.left, report.deleted_roles) == (
        "finished",
        50,
        5,
        1,
    )
    stats = rig.site.stats
    assert stats.role_cascade_users == 0
    assert 0 < stats.largest_bulk_patch <= 10
    assert [r.id for r in rig.site.store.all_roles()] == [101]
    assert all(100 not in u.roles for u in rig.site_users().values())
    assert rig.mismatches() == []
    assert rig.broken_bounds() == []


async def test_dry_run_counts_without_writing(rig: Rig) -> None:
    rig.seed([MOD], [person(i) for i in range(1, 11)])
    rig.guild.add_role(MOD)
    for i in range(2, 13):
        rig.guild.add_member(person(i, "renamed" if i < 5 else "", [100] if i == 9 else []))
    report = await rig.engine.sync_users(dry_run=True)
    plan = report.plan
    assert (plan.creates, plan.updates, plan.leaves, plan.unchanged) == (2, 4, 1, 5)
    assert plan.by_field == {"name": 3, "roles": 1, "in_guild": 1}
    assert {s.user_id for s in plan.sample} == {1, 2, 3, 4, 9, 11, 12}
    assert set(rig.site.stats.by_route) == {"GET /api/bot/users"}


async def test_a_user_created_instead_of_patched_counts_once_as_created_and_never_failed(
    rig: Rig,
) -> None:
    rig.seed([], [person(i) for i in range(1, 4)])
    for i in range(1, 5):  # the site lacks 4: its patch is a 404, so it is created instead
        rig.guild.add_member(person(i, f"renamed{i}"))
        rig.engine.enqueue_member(i, {"name"})
    await asyncio.wait_for(rig.engine.flush(), 5)
    counts = rig.engine.events.counts
    assert (counts["created"], counts["updated"], counts["failed"]) == (1, 3, 0)
    assert rig.mismatches() == []
    assert not rig.of_type(BadRecords) and not rig.of_type(ChunkFailed)
    assert all(event.ok for event in rig.of_type(ChunkDone))
    assert rig.broken_bounds() == []


async def test_cancelling_a_failed_run_while_it_drains_still_reports_it_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="guild_sync.engine.engine")
    faults = FaultConfig(malformed_pages="wrong_types", malformed_from_page=2)
    rig, site = await make_rig(chunk_size=5, max_in_flight=1, faults=faults, attempts=1)
    try:
        rig.seed([], [person(i) for i in range(1, 101)])
        for i in range(1, 101):
            rig.guild.add_member(person(i, f"n{i}"))
        # Page 1's 25 writes fit in the queue (10 items) once 15 are answered, so the walk
        # reaches page 2 and fails whatever happens to the writes after those: the gate holds
        # the next one, and the failed run is left draining with a write of it held.
        site.hold.arm(BULK_PATCH, after_items=15)
        task = asyncio.create_task(rig.engine.sync_users())
        await until(lambda: site.hold.waiting == 1 and _stopped(caplog, "users-1"))
        assert not task.done()
        task.cancel()
        site.hold.release()  # the cancelled run still waits for the write in flight
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        await asyncio.wait_for(rig.engine.hub.idle(), 5)
        (finished,) = rig.of_type(RunFinished)
        landed = sum(u.name.startswith("n") for u in rig.site_users().values())
        assert finished.status == "cancelled"
        assert 15 <= finished.updated == landed < 25
        assert len(rig.engine.queue) == 0
        assert rig.broken_bounds() == []
    finally:
        await close_rig(rig)


def _stopped(caplog: pytest.LogCaptureFixture, run_id: str) -> bool:
    """The engine logged the run's failure: it is past the walk, waiting for its writes."""
    return any(record.getMessage().startswith(f"{run_id} stopped") for record in caplog.records)


async def test_the_progress_meter_counts_what_a_run_wrote_in_chunks_with_rejected_items(
    rig: Rig,
) -> None:
    rig.seed([MOD], [person(i) for i in range(1, 31)])
    rig.guild.add_role(MOD)
    for i in range(1, 31):
        rig.guild.add_member(person(i, f"new{i}", [100]))
    for i in (4, 15, 26):  # one rejected item in each chunk of 10
        rig.guild.add_member(person(i, "x" * 33))
    report = await asyncio.wait_for(rig.engine.sync_users(), 10)
    assert (report.status, report.updated, report.failed) == ("partial", 27, 3)
    await asyncio.wait_for(rig.engine.hub.idle(), 5)
    meter = RateMeter()
    for event in rig.events:
        meter.feed(event)
    assert meter.done == report.written == 27
    assert rig.broken_bounds() == []
