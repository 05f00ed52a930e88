"""The sync's metrics, sent through the host bot's statsd client (`bot.stats`), served to
Prometheus, or nowhere.

pydis_core's bots carry an `AsyncStatsClient` as `bot.stats`; the extension reports through it so
its numbers sit next to the host's, under the host's prefix. A host without one can turn on a
Prometheus endpoint (`SYNC_METRICS_PORT`, `_prometheus.py`). Everything goes through the small
`MetricsSink` interface, named after what happened rather than after statsd calls, so each
backend is one more sink.

Where the numbers come from: the engine's progress events (chunks, retries, rejected and failed
records), the end of every run (`Runs.run`), a sample of the engine's state (requests in flight,
queued writes) every `INTERVAL_S` and, for a sink that is scraped, at every scrape, and the
breaker's state of each kind whenever the run book learns it (`RunBook.watch_breakers`: the
start-up's recovery, every automatic run's admission, every recorded ending). Progress events
are per run: a chunk carrying writes of a run and of member events (only while both are busy at
once) counts once for each.

"Seconds since the last full sync" is a gauge refreshed every `INTERVAL_S`, and at once when a
user sync succeeds. A statsd gauge keeps its last value until it is set again, so one set only
when runs end would sit at zero after the last success however long ago that was, and an alert
on "no full sync for a day" could never fire; sampling makes it grow while nothing succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, Protocol

from guild_sync.engine import SyncEngine
from guild_sync.engine.progress import (
    BadRecords,
    ChunkDone,
    ChunkFailed,
    ProgressEvent,
    Retrying,
    RunFinished,
)

log = logging.getLogger(__name__)

INTERVAL_S = 10.0
"""How often the gauges are sampled: statsd's default flush interval, one sample per flush."""
FULL_SYNC = "users"
"""The run that compares every member with the site: its success is what "full sync" means."""


class MetricsSink(Protocol):
    """Where the metrics go: statsd through the host, a Prometheus endpoint, or nowhere."""

    def run_ended(self, kind: str, outcome: str, duration_s: float | None) -> None:
        """A run's end; `duration_s` is None for one that never started."""

    def users(self, outcome: str, count: int) -> None:
        """Users whose write the site took (written), refused for their content (rejected) or
        that failed after every retry (failed)."""

    def request(self, outcome: str) -> None:
        """A write chunk answered without a failed request (ok), a request that needed a retry
        (retried), a request that still failed after every retry (failed)."""

    def retry(self) -> None: ...

    def in_flight(self, requests: int) -> None: ...

    def queue_depth(self, writes: int) -> None: ...

    def since_full_sync(self, seconds: float) -> None: ...

    def breaker_open(self, kind: str, is_open: bool) -> None:
        """Whether the journal's breaker refuses automatic runs of `kind` (it opened after
        SYNC_BREAKER_THRESHOLD failed automatic runs in a row), as last learnt."""

    def sample_on_scrape(self, sample: Callable[[], None]) -> None:
        """A sink that is scraped (Prometheus) calls `sample` before each answer, so its gauges
        are those of the moment it is read, not of the last `INTERVAL_S` tick; the others
        ignore it."""


class NullSink:
    """No metrics backend: every call is dropped."""

    def run_ended(self, kind: str, outcome: str, duration_s: float | None) -> None:
        pass

    def users(self, outcome: str, count: int) -> None:
        pass

    def request(self, outcome: str) -> None:
        pass

    def retry(self) -> None:
        pass

    def in_flight(self, requests: int) -> None:
        pass

    def queue_depth(self, writes: int) -> None:
        pass

    def since_full_sync(self, seconds: float) -> None:
        pass

    def breaker_open(self, kind: str, is_open: bool) -> None:
        pass

    def sample_on_scrape(self, sample: Callable[[], None]) -> None:
        pass


class StatsdClient(Protocol):
    """The part of statsd's client (pydis_core's AsyncStatsClient) used here."""

    def incr(self, stat: str, count: int = 1, rate: float = 1) -> None: ...

    def gauge(self, stat: str, value: float, rate: float = 1, delta: bool = False) -> None: ...

    def timing(self, stat: str, delta: float, rate: float = 1) -> None: ...


class StatsdSink:
    """Metrics through `bot.stats`, looked up at every call: pydis_core sets it in `setup_hook`
    and replaces it when it reconnects to statsd, so a client kept from load time could be a
    dead one. Names are fixed words and run kinds (no ids, no settings), so nothing secret or
    unbounded becomes a metric name."""

    def __init__(self, bot: object) -> None:
        self._bot = bot

    def _stats(self) -> StatsdClient | None:
        return getattr(self._bot, "stats", None)

    def run_ended(self, kind: str, outcome: str, duration_s: float | None) -> None:
        if (stats := self._stats()) is not None:
            stats.incr(f"sync.runs.{_part(kind)}.{_part(outcome)}")
            if duration_s is not None:
                stats.timing(f"sync.run_duration.{_part(kind)}", duration_s * 1000)

    def users(self, outcome: str, count: int) -> None:
        if count and (stats := self._stats()) is not None:
            stats.incr(f"sync.users_{_part(outcome)}", count)

    def request(self, outcome: str) -> None:
        if (stats := self._stats()) is not None:
            stats.incr(f"sync.requests.{_part(outcome)}")

    def retry(self) -> None:
        if (stats := self._stats()) is not None:
            stats.incr("sync.retries")

    def in_flight(self, requests: int) -> None:
        if (stats := self._stats()) is not None:
            stats.gauge("sync.requests_in_flight", requests)

    def queue_depth(self, writes: int) -> None:
        if (stats := self._stats()) is not None:
            stats.gauge("sync.queue_depth", writes)

    def since_full_sync(self, seconds: float) -> None:
        if (stats := self._stats()) is not None:
            stats.gauge("sync.seconds_since_full_sync", round(seconds))

    def breaker_open(self, kind: str, is_open: bool) -> None:
        if (stats := self._stats()) is not None:
            stats.gauge(f"sync.breaker_open.{_part(kind)}", int(is_open))

    def sample_on_scrape(self, sample: Callable[[], None]) -> None:
        pass  # statsd is sent to, never scraped: the sampling loop's ticks are its samples


def _part(word: str) -> str:
    """One dotted part of a statsd name: `role-delete` would be fine for statsd but not for
    Graphite's functions or a later Prometheus label, so it becomes `role_delete`."""
    return re.sub(r"[^a-z0-9_]", "_", word.lower())


def sink_for(bot: object, settings: object = None) -> MetricsSink:
    """statsd when the host bot has a `stats` attribute (pydis_core's bots do, a dummy client
    when no statsd URL is set): the host's metrics backend wins, so one bot is not scraped in
    two places. Otherwise a Prometheus endpoint when `SYNC_METRICS_PORT` is set, else nothing.

    The settings are read with `getattr` so this works with settings that do not have the
    metrics fields. A port that cannot be listened on (taken, or a host not on this machine) is
    logged and leaves the extension without metrics: metrics must not stop the syncs."""
    port = getattr(settings, "metrics_port", None)
    if hasattr(bot, "stats"):
        if port is not None:
            log.info("SYNC_METRICS_PORT ignored: the host bot has statsd (bot.stats)")
        return StatsdSink(bot)
    if port is None:
        return NullSink()
    from guild_sync.exts.sync._prometheus import PrometheusSink  # imports _part from here

    host = getattr(settings, "metrics_host", None) or "127.0.0.1"
    try:
        return PrometheusSink.serve(host, port)
    except OSError as error:
        log.error(
            "SYNC_METRICS_HOST/SYNC_METRICS_PORT: cannot listen on %s port %s (%s); "
            "no Prometheus metrics",
            host,
            port,
            error,
        )
        return NullSink()


class SyncMetrics:
    """Turns progress events, run ends and the engine's state into the sink's calls."""

    def __init__(
        self,
        sink: MetricsSink,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        interval_s: float = INTERVAL_S,
    ) -> None:
        self.sink = sink
        self._clock = clock
        self._sleep = sleep
        self.interval_s = interval_s
        self.last_full_sync = clock()
        """When the last user sync succeeded; until one has, when the extension loaded (after
        a restart the gauge counts from the restart: read it with the runs' outcomes)."""
        self._engine: SyncEngine | None = None
        self._unwritten: dict[str, int] = {}
        """Per run: items of its chunks reported rejected or failed, not yet netted out of a
        ChunkDone (they are published before their chunk's ChunkDone)."""
        sink.sample_on_scrape(self.sample)

    @classmethod
    def of(cls, bot: object, settings: object = None) -> SyncMetrics:
        return cls(sink_for(bot, settings))

    async def close(self) -> None:
        """Stop what the sink serves (the Prometheus endpoint frees its port), so a reload can
        listen again; the cog's unload calls it. Safe to call twice, and a no-op for the other
        sinks."""
        close: Callable[[], Awaitable[None]] | None = getattr(self.sink, "close", None)
        if close is not None:
            await close()

    def attach(self, engine: SyncEngine) -> None:
        """Count the engine's progress events and sample its state; the engine's close ends
        the subscription. Once per engine: a second subscription would count everything twice."""
        if self._engine is engine:
            return
        self._engine = engine
        engine.subscribe(self.feed)

    def watch(self, engine: SyncEngine) -> Coroutine[Any, Any, None]:
        """Attach now, so no event published from here on is missed, and return the sampling
        loop for the caller to run as a task it cancels on unload."""
        self.attach(engine)
        return self.sample_every()

    async def sample_every(self) -> None:
        while True:
            self.sample()
            await self._sleep(self.interval_s)

    def sample(self) -> None:
        """The gauges, from the engine's state now."""
        with _never_raises():
            if self._engine is not None:
                self.sink.in_flight(self._engine.window.in_flight)
                self.sink.queue_depth(len(self._engine.queue))
            self.sink.since_full_sync(self._clock() - self.last_full_sync)

    def feed(self, event: ProgressEvent) -> None:
        if isinstance(event, ChunkDone):
            unwritten = self._unwritten.pop(event.run_id, 0)
            if unwritten > event.items:
                self._unwritten[event.run_id] = unwritten - event.items
            self.sink.users("written", max(0, event.items - unwritten))
            if event.ok:
                self.sink.request("ok")
        elif isinstance(event, BadRecords):
            self._unwritten[event.run_id] = self._unwritten.get(event.run_id, 0) + len(event.ids)
            self.sink.users("rejected", len(event.ids))
        elif isinstance(event, ChunkFailed):
            self._unwritten[event.run_id] = self._unwritten.get(event.run_id, 0) + len(event.ids)
            self.sink.users("failed", len(event.ids))
            self.sink.request("failed")
        elif isinstance(event, Retrying):
            self.sink.retry()
            if event.attempt == 1:  # a request's first retry: count the request once
                self.sink.request("retried")
        elif isinstance(event, RunFinished):
            self._unwritten.pop(event.run_id, None)

    def run_refused(self, kind: str) -> None:
        """A run asked for that never started: the breaker, the guard or another process's
        lease said no."""
        with _never_raises():
            self.sink.run_ended(kind, "refused", None)

    def breaker(self, kind: str, is_open: bool) -> None:
        """The breaker of `kind` is open (automatic runs refused) or closed, as the run book
        just learnt from the journal."""
        with _never_raises():
            self.sink.breaker_open(kind, is_open)

    def run_ended(self, report: RunFinished, *, succeeded: bool, duration_s: float) -> None:
        """`succeeded` as the journal and the breaker count it (`journal_status`): a run whose
        only failures were records the site refused reached a healthy site."""
        outcome = "dry_run" if report.dry_run else report.status
        with _never_raises():
            self.sink.run_ended(report.kind, outcome, duration_s)
        if succeeded and report.kind == FULL_SYNC and not report.dry_run:
            self.last_full_sync = self._clock()
            self.sample()


@contextlib.contextmanager
def _never_raises() -> Iterator[None]:
    """A metrics backend that fails must not end a run before its journal row and summary, nor
    stop the sampling loop. (Progress events need no guard: the hub logs a failing subscriber.)"""
    try:
        yield
    except Exception:
        log.exception("sending sync metrics failed")
