"""Drift repair without a restart: a roles-then-users sync every `SYNC_RECONCILE_INTERVAL` hours.

Member and role events keep the site current between full syncs; what they miss (a member write
that failed after every retry, an event Discord never delivered, an edit made on the site by
someone else) stays wrong until the next full sync. The upstream bot syncs only at start-up, so
that could be weeks. The reconcile is the start-up sync again, in the background: level-triggered
(it compares and writes only what differs), an automatic run with the trigger `reconcile`, through
the same breaker, guard, lease and reporting (`SyncCog._roles_then_users`, `Runs.run`).

Scheduling rules (tests/unit/test_reconcile.py):

- off when the interval is 0;
- the first tick one interval after the start-up finished (the start-up sync just reconciled);
- each wait is the interval ±`JITTER`, drawn afresh, so bots sharing a site drift apart instead
  of reconciling at the same moment for ever;
- a tick is skipped, with a log line, while the previous reconcile still runs, while a run
  sharing a lock with it (a role sync or role deletion, a user sync; any trigger) is running or
  waiting for its turn, a moderator's answer or a lease, and while a reconnect's new member list
  loads. Skipped ticks are not made up: the next one comes an interval later. So runs never pile
  up, and two reconciles never run at once.

Nothing of its own goes to the log channel: its runs' messages are those of any automatic run;
its starts and skips are logged. A start-up that never finished (the member list did not load in
time) built no engine: nothing can sync, and the timer never starts either.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from guild_sync.exts.sync._runs import TITLES
from guild_sync.times import span

if TYPE_CHECKING:
    from guild_sync.exts.sync._cog import SyncCog

log = logging.getLogger(__name__)

RECONCILE = "reconcile"
"""The trigger of the background reconcile's runs (in the journal's TRIGGERS)."""
JITTER = 0.05
"""Each wait is the interval times a factor drawn uniformly from 1 ± JITTER."""
HOUR_S = 3600.0
RECONCILED = ("roles", "users")
"""The kinds a reconcile runs; a run sharing a lock with either makes a tick skip."""


class RunsState(Protocol):
    def busy(self, kind: str) -> bool: ...


Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


class Reconciler:
    def __init__(
        self,
        *,
        interval_h: float,
        started: asyncio.Event,
        ready: Callable[[], bool],
        runs: Callable[[], RunsState | None],
        sync: Callable[[], Coroutine[Any, Any, object]],
        spawn: Spawn,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        factor: Callable[[], float] = lambda: random.uniform(1 - JITTER, 1 + JITTER),
    ) -> None:
        self.interval_s = interval_h * HOUR_S
        self._started = started
        self._ready = ready
        self._runs = runs
        self._sync = sync
        self._spawn = spawn
        self._sleep = sleep
        self._factor = factor
        self.current: asyncio.Task[Any] | None = None
        """The reconcile running now, if one is."""
        self.started_runs = 0
        self.skipped_ticks = 0

    @classmethod
    def of(cls, cog: SyncCog) -> Reconciler:
        return cls(
            interval_h=cog.settings.reconcile_interval,
            started=cog.startup_done,
            ready=cog.ready.is_set,
            runs=lambda: cog.runs,
            sync=lambda: cog._roles_then_users(RECONCILE),
            spawn=cog._spawn,
        )

    def next_wait(self) -> float:
        return self.interval_s * self._factor()

    async def run(self) -> None:
        """The timer: wait for the start-up to finish, then tick every interval (jittered)."""
        if self.interval_s <= 0:
            log.info("background reconcile is off (SYNC_RECONCILE_INTERVAL is 0)")
            return
        await self._started.wait()
        wait = self.next_wait()
        log.info(
            "background reconcile every %s (±%d%%); the first in %s",
            span(self.interval_s),
            round(JITTER * 100),
            span(wait),
        )
        while True:
            await self._sleep(wait)
            wait = self.next_wait()
            self.tick(wait)

    def tick(self, next_wait: float) -> asyncio.Task[Any] | None:
        """Start a reconcile unless `skip_reason` says not to; the reconcile's task if started."""
        reason = self.skip_reason()
        if reason is not None:
            self.skipped_ticks += 1
            log.info("background reconcile skipped: %s; the next in %s", reason, span(next_wait))
            return None
        self.started_runs += 1
        log.info(
            "background reconcile starting: a role sync, then a user sync (trigger %s); "
            "the next in %s",
            RECONCILE,
            span(next_wait),
        )
        self.current = self._spawn(self._sync(), "sync-reconcile-background")
        return self.current

    def skip_reason(self) -> str | None:
        if self.current is not None and not self.current.done():
            return "the previous reconcile is still running"
        if not self._ready():
            return "the guild's member list is loading (a reconnect without resume)"
        runs = self._runs()
        if runs is None:
            return "sync is not ready"
        for kind in RECONCILED:
            if runs.busy(kind):
                return f"a {TITLES[kind].lower()} (or a run sharing its lock) is running or waiting"
        return None
