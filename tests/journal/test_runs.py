"""Run records through each backend: round trip, ordering, bounds, interrupted runs."""

from __future__ import annotations

import asyncio

import pytest

from guild_sync.journal import CANCELLED, FAILED, INTERRUPTED, RUNNING, SUCCEEDED, Run

from .conftest import Store


async def test_a_run_round_trips_with_its_progress_and_result(store: Store) -> None:
    journal = await store.open()
    run = Run.begin(
        "roles", "command", actor="Moderator#0 (1234)", owner="bot-1", detail={"pages": 2}
    )
    assert not run.automatic

    assert await journal.start_run(run) == run
    assert await journal.get_run(run.run_id) == run

    progressed = await journal.update_run(run.run_id, planned=80_000, done=1_000, failed=3)
    assert progressed is not None
    assert (progressed.planned, progressed.done, progressed.failed) == (80_000, 1_000, 3)
    assert progressed.heartbeat_at is not None and progressed.heartbeat_at >= run.started_at

    finished = await journal.finish_run(run.run_id, FAILED, last_error="HTTP 500", done=79_000)
    assert finished is not None
    assert finished.status == FAILED
    assert finished.last_error == "HTTP 500"
    assert (finished.planned, finished.done, finished.failed) == (80_000, 79_000, 3)
    assert finished.finished_at is not None and finished.finished_at >= finished.started_at

    reopened = await store.open()
    assert await reopened.get_run(run.run_id) == finished


async def test_recent_runs_are_newest_first_and_filter_by_kind(store: Store) -> None:
    journal = await store.open()
    kinds = ["roles", "users", "roles", "role-delete", "users"]
    runs = [await journal.start_run(Run.begin(kind, "event")) for kind in kinds]

    assert [run.run_id for run in await journal.recent_runs()] == [
        run.run_id for run in reversed(runs)
    ]
    assert [run.run_id for run in await journal.recent_runs(limit=2)] == [
        runs[4].run_id,
        runs[3].run_id,
    ]
    assert [run.run_id for run in await journal.recent_runs(kind="roles")] == [
        runs[2].run_id,
        runs[0].run_id,
    ]


async def test_running_runs_lists_only_unfinished_runs(store: Store) -> None:
    journal = await store.open()
    first = await journal.start_run(Run.begin("roles", "startup"))
    second = await journal.start_run(Run.begin("users", "startup"))
    await journal.finish_run(first.run_id, SUCCEEDED)

    assert [run.run_id for run in await journal.running_runs()] == [second.run_id]


async def test_a_finished_run_keeps_its_first_result(store: Store) -> None:
    journal = await store.open()
    run = await journal.start_run(Run.begin("users", "command", actor="Mod"))
    await journal.finish_run(run.run_id, CANCELLED)

    again = await journal.finish_run(run.run_id, SUCCEEDED)

    assert again is not None and again.status == CANCELLED
    stored = await journal.get_run(run.run_id)
    assert stored is not None and stored.status == CANCELLED
    assert await journal.finish_run("no-such-run", SUCCEEDED) is None
    with pytest.raises(ValueError, match="finishes as one of"):
        await journal.finish_run(run.run_id, RUNNING)


async def test_history_is_bounded_but_keeps_running_runs(store: Store) -> None:
    journal = await store.open(max_runs=5)
    oldest = await journal.start_run(Run.begin("users", "startup"))
    finished = []
    for _ in range(7):
        run = await journal.start_run(Run.begin("roles", "event"))
        await journal.finish_run(run.run_id, SUCCEEDED)
        finished.append(run.run_id)

    kept = [run.run_id for run in await journal.recent_runs(limit=100)]

    assert kept == [*reversed(finished[-5:]), oldest.run_id]
    assert await journal.get_run(finished[0]) is None


async def test_runs_of_a_dead_process_become_interrupted(store: Store) -> None:
    previous = await store.open()
    dead = await previous.start_run(Run.begin("users", "startup", owner="bot-old", planned=9))
    await previous.update_run(dead.run_id, done=4)
    mine = await previous.start_run(Run.begin("roles", "startup", owner="bot-new"))

    restarted = await store.open()
    assert await restarted.mark_interrupted(current_owner="bot-new", stale_after=3600) == []

    interrupted = await restarted.mark_interrupted(current_owner="bot-new", stale_after=0)

    assert [run.run_id for run in interrupted] == [dead.run_id]
    assert interrupted[0].status == INTERRUPTED
    assert interrupted[0].done == 4
    assert "bot-old" in (interrupted[0].last_error or "")
    assert [run.run_id for run in await restarted.running_runs()] == [mine.run_id]
    assert await restarted.mark_interrupted(current_owner="bot-new", stale_after=0) == []

    # A process that was only slow may still report how its run really ended.
    late = await previous.finish_run(dead.run_id, SUCCEEDED, done=9)
    assert late is not None and late.status == SUCCEEDED


async def test_two_processes_marking_interrupted_runs_report_each_run_once(store: Store) -> None:
    previous = await store.open()
    dead = [await previous.start_run(Run.begin("users", "startup", owner="old")) for _ in range(3)]
    first, second = await store.open(), await store.open()

    reports = await asyncio.gather(
        first.mark_interrupted(current_owner="new-1", stale_after=0),
        second.mark_interrupted(current_owner="new-2", stale_after=0),
    )

    reported = sorted(run.run_id for report in reports for run in report)
    assert reported == sorted(run.run_id for run in dead)
