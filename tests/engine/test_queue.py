"""Branch logic of the write queue: coalescing, build-time payloads, deferral, backpressure."""

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from guild_sync.engine.diff import ALL_FIELDS, Kind
from guild_sync.engine.guild import InMemoryGuild
from guild_sync.engine.queue import WriteQueue
from guild_sync.engine.run import Run
from guild_sync.site.records import Role, User

ROLE = Role(10, "mod", 0, 0, 1)


def member(user_id: int, name: str = "ann", roles: frozenset[int] = frozenset()) -> User:
    return User(user_id, name, "", 1, roles)


def make_queue(chunk_size: int = 3, limit: int = 100, linger: float = 1.0) -> WriteQueue:
    return WriteQueue(chunk_size, limit, linger)


def test_a_user_queued_twice_is_sent_once_with_the_union_of_fields() -> None:
    guild = InMemoryGuild([ROLE], [member(1, roles=frozenset({10}))])
    queue, run = make_queue(), Run("r", "users", "test")
    queue.put(1, Kind.PATCH, frozenset({"name"}), run)
    queue.put(1, Kind.PATCH, frozenset({"roles"}), run)
    (op,) = queue.take(guild, ())
    assert op.patch == {"id": 1, "name": "ann", "roles": [10]}
    assert run.outstanding == 1


def test_the_payload_is_read_when_the_chunk_is_built_not_when_queued() -> None:
    guild = InMemoryGuild([], [member(1, "old")])
    queue, run = make_queue(), Run("r", "users", "test")
    queue.put(1, Kind.PATCH, frozenset({"name"}), run)
    guild.update_member(member(1, "new"))
    (op,) = queue.take(guild, ())
    assert op.patch == {"id": 1, "name": "new"}


def test_a_member_who_left_before_sending_is_sent_as_not_in_guild() -> None:
    guild = InMemoryGuild([], [member(1)])
    queue, run = make_queue(), Run("r", "users", "test")
    queue.put(1, Kind.PATCH, frozenset({"name"}), run)
    queue.put(2, Kind.CREATE, ALL_FIELDS, run)
    guild.remove_member(1)
    left, never_member = queue.take(guild, ())
    assert (left.patch, left.outcome) == ({"id": 1, "in_guild": False}, "left")
    assert (never_member.create, never_member.patch, never_member.outcome) == (
        None,
        None,
        "skipped",
    )


def test_stripping_removes_the_role_from_members_and_left_users() -> None:
    guild = InMemoryGuild([ROLE], [member(1, roles=frozenset({10}))])
    queue, run = make_queue(), Run("r", "role-delete", "test")
    queue.put(1, Kind.PATCH, frozenset({"roles"}), run, frozenset())
    queue.put(2, Kind.PATCH, frozenset({"roles"}), run, frozenset({7}))
    kept, gone = queue.take(guild, {10})
    assert kept.patch == {"id": 1, "roles": []}
    assert gone.patch == {"id": 2, "in_guild": False, "roles": [7]}


@pytest.mark.parametrize(
    ("first", "second", "merged"),
    [
        (Kind.PATCH, Kind.PATCH, Kind.PATCH),
        (Kind.CREATE, Kind.PATCH, Kind.UPSERT),  # a create alone could drop the patch
        (Kind.PATCH, Kind.CREATE, Kind.UPSERT),
        (Kind.PATCH, Kind.UPSERT, Kind.UPSERT),
        (Kind.CREATE, Kind.UPSERT, Kind.UPSERT),
    ],
)
def test_kinds_merge_to_a_write_that_covers_both(first: Kind, second: Kind, merged: Kind) -> None:
    guild = InMemoryGuild([], [member(1)])
    queue, run = make_queue(), Run("r", "users", "test")
    queue.put(1, first, frozenset({"name"}), run)
    queue.put(1, second, frozenset({"name"}), run)
    (op,) = queue.take(guild, ())
    assert (op.create is not None, op.patch is not None) == {
        Kind.PATCH: (False, True),
        Kind.CREATE: (True, False),
        Kind.UPSERT: (True, True),
    }[merged]


def test_an_id_in_flight_waits_until_its_earlier_write_is_answered() -> None:
    guild = InMemoryGuild([], [member(1), member(2)])
    queue, run = make_queue(), Run("r", "users", "test")
    queue.put(1, Kind.PATCH, frozenset({"name"}), run)
    first = queue.take(guild, ())
    queue.put(1, Kind.PATCH, frozenset({"discriminator"}), run)
    queue.put(2, Kind.PATCH, frozenset({"name"}), run)
    assert [op.user_id for op in queue.take(guild, ())] == [2]
    queue.done([op.user_id for op in first])
    (again,) = queue.take(guild, ())
    assert again.patch == {"id": 1, "discriminator": 1}


def test_chunks_hold_at_most_chunk_size_items() -> None:
    guild = InMemoryGuild([], [member(i) for i in range(7)])
    queue, run = make_queue(chunk_size=3), Run("r", "users", "test")
    for i in range(7):
        queue.put(i, Kind.PATCH, frozenset({"name"}), run)
    assert [len(queue.take(guild, ())) for _ in range(3)] == [3, 3, 1]


async def started(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Run `coro` in a task until it first waits or ends, and return the task.

    The task signals before it calls `coro`, and the caller can only resume once the task has
    gone as far as it can without waiting: a put that would not block has happened by then.
    """
    began = asyncio.Event()

    async def run() -> None:
        began.set()
        await coro

    task = asyncio.create_task(run())
    await began.wait()
    return task


async def test_full_sync_producers_wait_for_room_and_resume_when_writes_are_answered() -> None:
    guild = InMemoryGuild([], [member(i) for i in range(6)])
    queue, run = make_queue(chunk_size=2, limit=2), Run("r", "users", "test")
    await queue.put_waiting(0, Kind.PATCH, frozenset({"name"}), run)
    await queue.put_waiting(1, Kind.PATCH, frozenset({"name"}), run)
    blocked = await started(queue.put_waiting(2, Kind.PATCH, frozenset({"name"}), run))
    assert not blocked.done() and len(queue) == 2
    ops = queue.take(guild, ())
    behind_in_flight = await started(queue.put_waiting(3, Kind.PATCH, frozenset({"name"}), run))
    assert not behind_in_flight.done(), "items in flight still count against the limit"
    assert len(queue) == 2
    queue.done([op.user_id for op in ops])
    await asyncio.wait_for(asyncio.gather(blocked, behind_in_flight), 1)
    assert len(queue) == 2
    queue.put(4, Kind.PATCH, frozenset({"name"}), run)  # events never wait, even over the limit
    assert len(queue) == 3


async def test_wait_ready_lingers_for_a_partial_chunk_but_not_for_a_full_one() -> None:
    queue, run = make_queue(chunk_size=2, linger=0.2), Run("r", "events", "test")
    queue.put(1, Kind.PATCH, frozenset({"name"}), run)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(queue.wait_ready(), 1)
    assert loop.time() - started >= 0.15
    queue.take(InMemoryGuild(), ())
    queue.put(2, Kind.PATCH, frozenset({"name"}), run)
    queue.put(3, Kind.PATCH, frozenset({"name"}), run)
    started = loop.time()
    await asyncio.wait_for(queue.wait_ready(), 1)
    assert loop.time() - started < 0.1


def test_abandoning_a_run_keeps_writes_that_events_also_asked_for() -> None:
    guild = InMemoryGuild([], [member(1), member(2)])
    queue = make_queue()
    run, events = Run("r", "users", "test"), Run("events", "events", "gateway")
    queue.put(1, Kind.PATCH, frozenset({"name"}), run)
    queue.put(2, Kind.PATCH, frozenset({"name"}), events)
    queue.put(2, Kind.PATCH, frozenset({"roles"}), run)
    assert (run.outstanding, events.outstanding) == (2, 0)
    queue.abandon(run, events)
    assert (run.outstanding, events.outstanding) == (0, 1)
    (op,) = queue.take(guild, ())
    assert op.user_id == 2 and op.owner is events
