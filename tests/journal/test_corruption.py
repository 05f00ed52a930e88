"""Corrupt stored records are reported and set aside; the journal keeps working."""

from __future__ import annotations

import json

from guild_sync.journal import SUCCEEDED, Breaker, Run

from .conftest import Store


async def test_a_corrupt_run_is_quarantined_and_reported(store: Store) -> None:
    journal = await store.open()
    good = await journal.start_run(Run.begin("roles", "startup"))
    bad = await journal.start_run(Run.begin("users", "startup"))
    store.write_run_raw(bad.run_id, "{not json at all")

    runs = await journal.recent_runs()

    assert [run.run_id for run in runs] == [good.run_id]
    notices = journal.take_notices()
    assert len(notices) == 1
    assert bad.run_id in notices[0].where and "not JSON" in notices[0].reason
    assert journal.take_notices() == []
    assert store.quarantined() == [
        ("runs" if store.backend == "sqlite" else "run", bad.run_id, "{not json at all")
    ]

    assert await journal.get_run(bad.run_id) is None
    assert await journal.update_run(bad.run_id, done=1) is None
    fresh = await journal.start_run(Run.begin("users", "command", actor="Mod"))
    assert await journal.finish_run(fresh.run_id, SUCCEEDED) is not None
    assert [run.run_id for run in await journal.recent_runs()] == [fresh.run_id, good.run_id]


async def test_a_run_with_the_wrong_shape_is_caught_on_update(store: Store) -> None:
    journal = await store.open()
    run = await journal.start_run(Run.begin("users", "event"))
    shaped = run.to_json() | {"status": "exploded", "done": -5}
    store.write_run_raw(run.run_id, json.dumps(shaped))

    assert await journal.update_run(run.run_id, done=10) is None

    [notice] = journal.take_notices()
    assert "unknown status" in notice.reason
    assert [entry[1] for entry in store.quarantined()] == [run.run_id]
    assert await journal.running_runs() == []


async def test_a_corrupt_breaker_state_is_reset_and_reported(store: Store) -> None:
    journal = await store.open()
    store.write_breaker_raw("users", '{"kind": "users", "consecutive_failures": "many"}')
    breaker = Breaker(journal)

    decision = await breaker.allows("users", automatic=True)

    assert decision.allowed and decision.consecutive_failures == 0
    [notice] = journal.take_notices()
    assert "users" in notice.where and "consecutive_failures" in notice.reason
    assert [entry[:2] for entry in store.quarantined()] == [
        ("breakers" if store.backend == "sqlite" else "breaker", "users")
    ]
    assert (await journal.load_breaker("users")).consecutive_failures == 0
    assert journal.take_notices() == []
