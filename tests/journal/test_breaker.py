"""The circuit breaker over each backend: opening, announcing once, refusing, closing."""

from __future__ import annotations

import asyncio

from guild_sync.journal import CANCELLED, FAILED, INTERRUPTED, SUCCEEDED, Breaker, Journal, Run

from .conftest import Store


async def finished_run(
    journal: Journal, kind: str, trigger: str, status: str, error: str | None = None
) -> Run:
    run = await journal.start_run(Run.begin(kind, trigger, actor="Mod#0 (1)"))
    finished = await journal.finish_run(run.run_id, status, last_error=error)
    assert finished is not None
    return finished


async def test_three_failed_automatic_runs_open_the_breaker_once(store: Store) -> None:
    journal = await store.open()
    breaker = Breaker(journal)

    changes = []
    for attempt in range(3):
        run = await finished_run(journal, "users", "startup", FAILED, f"HTTP 500 #{attempt}")
        changes.append(await breaker.record_result(run))

    assert changes[:2] == [None, None]
    opened = changes[2]
    assert opened is not None and opened.opened and opened.kind == "users"
    assert opened.state.consecutive_failures == 3
    assert "HTTP 500 #2" in opened.describe()

    refused = await breaker.allows("users", automatic=True)
    assert not refused.allowed
    assert refused.last_error == "HTTP 500 #2"
    assert refused.consecutive_failures == 3
    assert refused.opened_at == opened.state.opened_at
    assert (await breaker.allows("roles", automatic=True)).allowed
    assert (await breaker.allows("users", automatic=False)).allowed

    # A restart: new journal object on the same store. Still open, and not announced again.
    restarted = Breaker(await store.open())
    assert not (await restarted.allows("users", automatic=True)).allowed
    late_failure = await finished_run(restarted.journal, "users", "event", FAILED, "HTTP 502")
    assert await restarted.record_result(late_failure) is None
    assert await restarted.record_result(late_failure) is None  # the same result, replayed
    assert (await restarted.allows("users", automatic=True)).consecutive_failures == 4

    failed_manual = await finished_run(restarted.journal, "users", "command", FAILED, "HTTP 500")
    assert await restarted.record_result(failed_manual) is None
    assert not (await restarted.allows("users", automatic=True)).allowed

    manual = await finished_run(restarted.journal, "users", "command", SUCCEEDED)
    closed = await restarted.record_result(manual)
    assert closed is not None and not closed.opened and closed.run_id == manual.run_id

    allowed = await breaker.allows("users", automatic=True)
    assert allowed.allowed and allowed.consecutive_failures == 0 and allowed.opened_at is None


async def test_a_successful_automatic_run_resets_the_count(store: Store) -> None:
    journal = await store.open()
    breaker = Breaker(journal, threshold=3)
    for status in (FAILED, FAILED, SUCCEEDED, FAILED, FAILED):
        change = await breaker.record_result(await finished_run(journal, "roles", "event", status))
        assert change is None

    decision = await breaker.allows("roles", automatic=True)
    assert decision.allowed and decision.consecutive_failures == 2


async def test_interrupted_runs_count_and_cancelled_or_repeated_results_do_not(
    store: Store,
) -> None:
    journal = await store.open()
    breaker = Breaker(journal, threshold=2)
    interrupted = await finished_run(journal, "users", "startup", INTERRUPTED, "process died")
    assert await breaker.record_result(interrupted) is None
    assert await breaker.record_result(interrupted) is None
    cancelled = await finished_run(journal, "users", "startup", CANCELLED)
    assert await breaker.record_result(cancelled) is None
    assert (await breaker.allows("users", automatic=True)).consecutive_failures == 1

    change = await breaker.record_result(await finished_run(journal, "users", "startup", FAILED))

    assert change is not None and change.opened


async def test_concurrent_failures_from_two_processes_announce_the_opening_once(
    store: Store,
) -> None:
    first, second = await store.open(), await store.open()
    runs = [
        await finished_run(journal, "users", "event", FAILED)
        for journal in (first, second)
        for _ in range(4)
    ]
    breakers = [Breaker(first), Breaker(second)]

    changes = await asyncio.gather(
        *(breakers[index % 2].record_result(run) for index, run in enumerate(runs))
    )

    assert sum(change is not None for change in changes) == 1
    state = await first.load_breaker("users")
    assert state.is_open and state.consecutive_failures == len(runs)
