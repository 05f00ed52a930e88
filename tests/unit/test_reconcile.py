"""The background reconcile's scheduling rules (guild_sync/exts/sync/_reconcile.py).

The timer's sleep is the test's: each wait is recorded and ends when the test says, so every
step below waits on observed state (the timer asleep again, a run entered), never on time.
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from guild_sync.config import SettingsError, load_settings
from guild_sync.exts.sync._reconcile import JITTER, RECONCILE, Reconciler
from guild_sync.exts.sync._runs import Runs
from guild_sync.journal.records import TRIGGERS
from tests.unit.test_config import one_line_error

pytestmark = pytest.mark.timeout(30)

HOUR = 3600.0


class Clock:
    """Stands in for asyncio.sleep."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self._asleep: asyncio.Queue[float] = asyncio.Queue()
        self._go: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self._asleep.put_nowait(seconds)
        await self._go.get()

    async def asleep(self) -> float:
        """The next wait the timer began (it is asleep in it now)."""
        return await self._asleep.get()

    async def tick(self) -> None:
        """End the current wait and return once the timer has ticked and sleeps again."""
        self._go.put_nowait(None)
        await self.asleep()


class Sync:
    """The roles-then-users sync: counts its calls and holds each until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> bool:
        self.calls += 1
        self.entered.set()
        await self.release.wait()
        return True


class StartUp(asyncio.Event):
    """`startup_done`, telling when the timer began to wait for it."""

    def __init__(self) -> None:
        super().__init__()
        self.awaited = asyncio.Event()

    async def wait(self) -> bool:
        self.awaited.set()
        return await super().wait()


class Busy:
    def __init__(self) -> None:
        self.kinds: set[str] = set()

    def busy(self, kind: str) -> bool:
        return kind in self.kinds


@pytest.fixture
async def tasks():
    spawned: list[asyncio.Task] = []
    yield spawned
    for task in spawned:
        task.cancel()
    await asyncio.gather(*spawned, return_exceptions=True)


def reconciler(tasks, *, interval_h=2.0, runs=None, ready=lambda: True, jitter=False):
    clock, sync, started = Clock(), Sync(), StartUp()

    def spawn(coro, name):
        task = asyncio.create_task(coro, name=name)
        tasks.append(task)
        return task

    state = Busy() if runs is None else runs
    timer = Reconciler(
        interval_h=interval_h,
        started=started,
        ready=ready,
        runs=lambda: state,
        sync=sync,
        spawn=spawn,
        sleep=clock.sleep,
        **({} if jitter else {"factor": lambda: 1.0}),
    )
    return SimpleNamespace(timer=timer, clock=clock, sync=sync, started=started, runs=state)


async def start_timer(timer, tasks) -> asyncio.Task:
    task = asyncio.create_task(timer.run())
    tasks.append(task)
    return task


async def test_off_at_zero_the_timer_ends_at_once_without_waiting_for_anything(tasks):
    c = reconciler(tasks, interval_h=0)
    await asyncio.wait_for(c.timer.run(), 5)  # not even for the start-up to finish
    assert (c.clock.waits, c.sync.calls) == ([], 0)
    assert not c.started.awaited.is_set()
    assert load_settings({"SYNC_RECONCILE_INTERVAL": "0"}, env_file=None).reconcile_interval == 0


async def test_the_first_tick_comes_one_interval_after_the_start_up_finished(tasks, caplog):
    caplog.set_level(logging.INFO, "guild_sync.exts.sync._reconcile")
    c = reconciler(tasks, interval_h=2.0)
    await start_timer(c.timer, tasks)
    await c.started.awaited.wait()
    assert c.clock.waits == [], "the timer began its wait before the start-up finished"
    c.started.set()
    assert await c.clock.asleep() == 2 * HOUR
    assert c.sync.calls == 0
    await c.clock.tick()
    await c.sync.entered.wait()
    assert c.sync.calls == 1 and c.timer.started_runs == 1
    assert c.clock.waits == [2 * HOUR, 2 * HOUR]
    logged = [r.getMessage() for r in caplog.records]
    assert any("every 2 hours (±5%); the first in 2 hours" in line for line in logged), logged
    assert any("background reconcile starting" in line for line in logged), logged


async def test_a_tick_while_the_previous_reconcile_runs_is_skipped_not_queued(tasks, caplog):
    caplog.set_level(logging.INFO, "guild_sync.exts.sync._reconcile")
    c = reconciler(tasks)
    await start_timer(c.timer, tasks)
    c.started.set()
    await c.clock.asleep()
    await c.clock.tick()
    await c.sync.entered.wait()
    first = c.timer.current
    await c.clock.tick()
    await c.clock.tick()
    assert (c.sync.calls, c.timer.started_runs, c.timer.skipped_ticks) == (1, 1, 2)
    assert c.timer.current is first and not first.done()
    skips = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skips) == 2 and "the previous reconcile is still running" in skips[0], skips

    c.sync.release.set()
    await first
    await c.clock.tick()  # skipped ticks are not made up: the next one simply runs
    assert (c.sync.calls, c.timer.started_runs) == (2, 2)
    assert c.timer.current is not first
    assert c.clock.waits == [2 * HOUR] * 5, "a skip must not shorten or lengthen the next wait"


@pytest.mark.parametrize("kind", ["roles", "users"])
async def test_a_tick_while_a_run_of_either_kind_runs_or_waits_is_skipped(tasks, caplog, kind):
    caplog.set_level(logging.INFO, "guild_sync.exts.sync._reconcile")
    c = reconciler(tasks)
    c.runs.kinds.add(kind)
    assert c.timer.tick(HOUR) is None
    assert c.sync.calls == 0
    assert f"{'role' if kind == 'roles' else 'user'} sync" in caplog.records[-1].getMessage()
    c.runs.kinds.clear()
    assert c.timer.tick(HOUR) is not None
    await c.sync.entered.wait()
    assert c.sync.calls == 1


async def test_a_tick_while_a_reconnect_reloads_the_member_list_is_skipped(tasks):
    loaded = False
    c = reconciler(tasks, ready=lambda: loaded)
    assert c.timer.tick(HOUR) is None
    assert "member list is loading" in c.timer.skip_reason()
    loaded = True
    assert c.timer.tick(HOUR) is not None


async def test_each_wait_is_the_interval_jittered_by_five_percent(tasks):
    waits = [reconciler(tasks, interval_h=6.0, jitter=True).timer.next_wait() for _ in range(500)]
    assert JITTER == 0.05
    assert all(6 * HOUR * 0.95 <= wait <= 6 * HOUR * 1.05 for wait in waits)
    assert max(waits) - min(waits) > 6 * HOUR * 0.05  # spread, not one value for every bot


async def test_runs_count_as_busy_while_they_wait_for_the_lock_or_run(tasks):
    """The real `Runs.busy`: a run waiting for its lock, or inside it (for a moderator's answer,
    a lease, the sync itself), counts, so the timer skips instead of queueing another."""
    runs = Runs(
        settings=load_settings({}, env_file=None),
        engine=SimpleNamespace(),
        book=SimpleNamespace(watch_breakers=lambda kinds, hook: None),
        channel=lambda: None,
        post=None,
    )
    began: asyncio.Queue[asyncio.Event] = asyncio.Queue()

    async def begin(request):
        gate = asyncio.Event()
        began.put_nowait(gate)
        await gate.wait()
        return None  # as when the breaker refuses: the run ends there

    runs._begin = begin
    c = reconciler(tasks, runs=runs)
    lock = runs.lock_of("users")
    await lock.acquire()  # held, but by no run: a held lock alone is not a run
    assert not runs.busy("users") and c.timer.skip_reason() is None

    waiting = asyncio.create_task(runs.run("users", trigger="event"))
    tasks.append(waiting)
    # Observed state, polled a loop turn at a time: nothing signals that a run was asked for.
    while not runs.busy("users"):  # noqa: ASYNC110
        await asyncio.sleep(0)
    assert began.empty(), "the run should be waiting for the lock"
    assert not runs.busy("roles")
    assert c.timer.tick(HOUR) is None

    lock.release()
    gate = await began.get()  # inside the lock now, waiting as a guard question would
    assert runs.busy("users")
    assert c.timer.tick(HOUR) is None
    gate.set()
    assert await waiting is None
    assert not runs.busy("users")
    assert c.timer.tick(HOUR) is not None
    await c.sync.entered.wait()


def test_the_setting_is_in_hours_and_validated():
    assert load_settings({}, env_file=None).reconcile_interval == 6.0
    assert (
        load_settings({"SYNC_RECONCILE_INTERVAL": "0.5"}, env_file=None).reconcile_interval == 0.5
    )
    for bad in ("-1", "721", "nan", "inf", "six"):
        with pytest.raises(SettingsError):
            load_settings({"SYNC_RECONCILE_INTERVAL": bad}, env_file=None)
    one_line_error("SYNC_RECONCILE_INTERVAL", "-1", "hours between 0 (off) and 720")
    one_line_error("SYNC_RECONCILE_INTERVAL", "six", "must be a number of hours")
    assert RECONCILE in TRIGGERS
