"""Updates the engine must never lose, whatever order the queue and the site see them in,
checked against the sandbox site over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from bot.sandbox.site import FaultConfig
from guild_sync.engine import BadRecords, ChunkDone
from guild_sync.engine.diff import ALL_FIELDS, Kind
from guild_sync.engine.run import Run
from guild_sync.site.errors import SiteAPIError
from guild_sync.site.records import Role

from .conftest import BULK_PATCH, CREATE, Rig, close_rig, make_rig, person, until

MOD = Role(100, "mod", 0, 0, 2)


async def test_a_rename_merged_into_a_queued_create_reaches_a_user_the_site_already_has(
    rig: Rig,
) -> None:
    # The full sync read the site before user 5 existed there and queued its create; the event
    # path's 404 -> create then landed first, with the name of that moment.
    rig.guild.add_member(person(5, "old"))
    rig.engine.queue.put(5, Kind.CREATE, ALL_FIELDS, rig.engine.events)
    rig.seed([], [person(5, "old")])
    # The member renames before the queued create is sent: the rename merges into it.
    rig.guild.add_member(person(5, "new"))
    rig.engine.enqueue_member(5, {"name"})

    await asyncio.wait_for(rig.engine.flush(), 5)

    assert rig.site_users()[5].name == "new"
    assert rig.mismatches() == []
    assert rig.engine.events.counts["failed"] == 0
    assert rig.broken_bounds() == []


async def test_users_the_site_lacks_cost_a_constant_number_of_requests_per_chunk() -> None:
    # After a site database restore: the site lacks every one of 1,000 members given a role.
    rig, _ = await make_rig(chunk_size=100, max_in_flight=2, linger=0.01)
    try:
        rig.seed([MOD], [])
        rig.guild.add_role(MOD)
        for i in range(1, 1001):
            rig.guild.add_member(person(i, roles=[MOD.id]))
            rig.engine.enqueue_member(i, {"roles"})
        await asyncio.wait_for(rig.engine.flush(), 30)

        assert rig.mismatches() == []
        chunks = 1000 // 100
        writes = rig.site.stats.routes[BULK_PATCH].requests + rig.site.stats.routes[CREATE].requests
        assert writes <= 3 * chunks, f"{writes} write requests for {chunks} chunks"
        assert rig.engine.events.counts["failed"] == 0
        assert rig.broken_bounds() == []
    finally:
        await close_rig(rig)


async def test_a_rejected_record_is_not_a_failed_request(rig: Rig) -> None:
    rig.seed([], [person(i) for i in range(1, 6)])
    for i in range(1, 6):
        rig.guild.add_member(person(i, f"new{i}"))
    rig.guild.add_member(person(3, "x" * 33))  # over the site's 32 characters: rejected
    report = await asyncio.wait_for(rig.engine.sync_users(), 10)

    assert (report.status, report.failed) == ("partial", 1)
    assert [event.ids for event in rig.of_type(BadRecords)] == [(3,)]
    # The site answered every request: the breaker must not count this run as failed.
    assert all(event.ok for event in rig.of_type(ChunkDone))


async def test_each_run_sharing_a_chunk_gets_its_own_outcomes(rig: Rig) -> None:
    rig.seed([], [person(1), person(2)])
    rig.guild.add_member(person(1, "renamed"))
    rig.guild.add_member(person(2, "y" * 33))  # rejected
    sync = Run("user-sync", "users", "command")
    rig.engine.enqueue_member(1, {"name"})  # the event run's op comes first in the chunk
    rig.engine.queue.put(2, Kind.PATCH, frozenset({"name"}), sync)
    await asyncio.wait_for(rig.engine.flush(), 5)
    await asyncio.wait_for(sync.drained(), 5)
    await asyncio.wait_for(rig.engine.hub.idle(), 5)

    assert [(event.run_id, event.ids) for event in rig.of_type(BadRecords)] == [("user-sync", (2,))]
    done = {event.run_id: event.items for event in rig.of_type(ChunkDone)}
    assert done == {rig.engine.events.run_id: 1, "user-sync": 1}
    assert sync.counts["failed"] == 1 and rig.engine.events.counts["updated"] == 1


async def test_a_role_create_whose_answer_was_lost_is_checked_not_failed() -> None:
    faults = FaultConfig(drop_route="POST /api/bot/roles", drop_times=1)
    rig, _ = await make_rig(faults=faults)
    try:
        rig.guild.add_role(MOD)
        report = await asyncio.wait_for(rig.engine.sync_roles(), 10)

        assert rig.site.stats.faults["drop"] == 1  # the create landed, its answer did not
        assert rig.site.stats.by_route["POST /api/bot/roles"] == 2
        assert (report.status, report.created) == ("finished", 1)
        assert rig.site.store.all_roles() == [MOD]
    finally:
        await close_rig(rig)


async def test_a_role_create_refused_for_an_existing_role_that_differs_still_fails() -> None:
    rig, _ = await make_rig()
    try:
        rig.guild.add_role(MOD)
        rig.seed([], [])
        with pytest.raises(SiteAPIError):
            # Someone else created the role with other values between our read and our write.
            rig.site.store.seed([Role(MOD.id, "other", 0, 0, 1)], [])
            await rig.client.create_role(MOD)
    finally:
        await close_rig(rig)


async def test_a_member_given_a_role_being_written_waits_for_it_and_lands(rig: Rig) -> None:
    new_role = Role(200, "brand new", 0, 0, 3)
    rig.seed([], [person(1)])
    rig.guild.add_role(new_role)
    rig.guild.add_member(person(1, roles=[new_role.id]))
    rig.site.hold.arm("POST /api/bot/roles", 0)  # the site is slow to create the role
    role_write = asyncio.create_task(rig.engine.write_role(new_role.id))
    await until(lambda: rig.site.hold.waiting == 1)

    rig.engine.enqueue_member(1, {"roles"})  # the member update right behind the role event
    flushed = asyncio.create_task(rig.engine.flush())
    await until(lambda: _patch_answered(rig) or _waiting_for_roles(rig))
    rig.site.hold.release()
    await asyncio.wait_for(asyncio.gather(role_write, flushed), 5)

    assert rig.site_users()[1].roles == {new_role.id}
    assert rig.of_type(BadRecords) == []


def _patch_answered(rig: Rig) -> bool:
    route = rig.site.stats.routes.get(BULK_PATCH)
    return route is not None and route.requests > route.in_flight


def _waiting_for_roles(rig: Rig) -> bool:
    role_writes = getattr(rig.engine, "role_writes", None)  # absent before the fix
    return role_writes is not None and role_writes.waiting > 0


async def test_a_recorded_plan_is_sent_without_reading_the_site_again(rig: Rig) -> None:
    rig.seed([], [person(i) for i in range(1, 51)] + [person(99)])
    for i in range(1, 51):
        rig.guild.add_member(person(i, f"renamed{i}" if i % 5 == 0 else ""))
    rig.guild.add_member(person(60))  # the site lacks them: a create
    plan = await rig.engine.plan_users(record=True)
    pages = rig.site.stats.routes["GET /api/bot/users"].requests
    rig.guild.add_member(person(10, "renamed again"))  # after the plan: its newest value goes

    report = await asyncio.wait_for(rig.engine.sync_users(plan=plan), 10)

    assert rig.site.stats.routes["GET /api/bot/users"].requests == pages
    assert (report.created, report.updated, report.left) == (1, 10, 1)
    assert rig.mismatches() == []
    assert rig.broken_bounds() == []
