"""The sync's metrics as a Prometheus `/metrics` endpoint, for hosts without statsd.

`SYNC_METRICS_PORT` turns it on when the host bot has no `bot.stats` (see `_metrics.sink_for`).
The numbers are the statsd path's, named the Prometheus way: kinds and outcomes become labels,
durations are seconds, counters end in `_total`.

Two choices that keep reloads and tests apart from each other and from the host:

- The metrics live in a `CollectorRegistry` of this sink's own, not prometheus_client's global
  one. A reload builds a new sink with the same metric names; in the global registry that is a
  "Duplicated timeseries" error, and a host's own metrics would share our endpoint.
- The endpoint is an aiohttp server on the bot's loop, not `start_http_server`'s thread: that
  thread's server is never shut down by an unload, so a reload would find its port taken. Here
  `close()` (the cog's unload) stops it and frees the port. The socket is bound at construction,
  so a port already in use is known, and logged, while the extension loads.

The endpoint has no authentication: it listens on 127.0.0.1 unless `SYNC_METRICS_HOST` says
otherwise. Its labels are run kinds and fixed outcome words, never ids or settings.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from guild_sync.exts.sync._metrics import _part

log = logging.getLogger(__name__)

KINDS = ("roles", "users", "role_delete")
"""Run kinds (`_runs.KINDS`, as label values), whose series exist from the start."""
RUN_OUTCOMES = ("finished", "partial", "failed", "cancelled", "interrupted", "dry_run", "refused")
USER_OUTCOMES = ("written", "rejected", "failed")
REQUEST_OUTCOMES = ("ok", "retried", "failed")
DURATION_BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
"""A role sync takes seconds; a user sync of a large guild, minutes to an hour."""
SHUTDOWN_S = 1.0
"""How long an unload waits for a scrape being answered (answers take milliseconds)."""


class PrometheusSink:
    """The `MetricsSink` behind a Prometheus endpoint: every call updates this sink's registry,
    which `/metrics` renders when scraped."""

    def __init__(self, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._wall_clock = wall_clock
        self.server: MetricsServer | None = None
        r = self.registry
        self._runs = Counter(
            "guild_sync_runs",
            "Runs ended, by kind and outcome (refused: never started: breaker, guard or lease)",
            ["kind", "outcome"],
            registry=r,
        )
        self._duration = Histogram(
            "guild_sync_run_duration_seconds",
            "How long each run that started took",
            ["kind"],
            buckets=DURATION_BUCKETS_S,
            registry=r,
        )
        self._users = Counter(
            "guild_sync_users",
            "Users the site took (written), refused for their content (rejected) or that failed "
            "after every retry (failed); member events' writes included",
            ["outcome"],
            registry=r,
        )
        self._requests = Counter(
            "guild_sync_requests",
            "Write chunks answered without a failed request (ok), requests that needed a retry "
            "(retried, once each), requests still failing after every retry (failed)",
            ["outcome"],
            registry=r,
        )
        self._retries = Counter(
            "guild_sync_retries", "Every retry of a site request, page reads included", registry=r
        )
        self._in_flight = Gauge(
            "guild_sync_requests_in_flight", "Write requests in flight", registry=r
        )
        self._queue = Gauge("guild_sync_queue_depth", "Writes queued or in flight", registry=r)
        self._last_full_sync = Gauge(
            "guild_sync_last_full_sync_timestamp_seconds",
            "Unix time of the last successful user sync, or of the extension's load before one",
            registry=r,
        )
        self._breaker_open = Gauge(
            "guild_sync_breaker_open",
            "1 while the breaker refuses automatic runs of the kind (SYNC_BREAKER_THRESHOLD "
            "failed automatic runs in a row; a moderator's successful run closes it), else 0",
            ["kind"],
            registry=r,
        )
        self._sample: Callable[[], None] | None = None
        """The gauges' sampler (`SyncMetrics.sample`), called before each scrape is answered."""
        # Every series alerts read exists at 0 from the start: `increase()` cannot see the
        # first failure of a series that appears with the value 1.
        for kind in KINDS:
            self._duration.labels(kind)
            self._breaker_open.labels(kind).set(0)
            for outcome in RUN_OUTCOMES:
                self._runs.labels(kind, outcome)
        for outcome in USER_OUTCOMES:
            self._users.labels(outcome)
        for outcome in REQUEST_OUTCOMES:
            self._requests.labels(outcome)
        self._last_full_sync.set(wall_clock())

    @classmethod
    def serve(
        cls, host: str, port: int, *, wall_clock: Callable[[], float] = time.time
    ) -> PrometheusSink:
        """A sink with its endpoint listening on `host:port` (0: any free port, for tests);
        raises OSError when it cannot listen there. Needs the running loop (the extension's
        `setup`)."""
        sink = cls(wall_clock=wall_clock)
        sink.server = MetricsServer.listen(sink.registry, host, port, before_scrape=sink._sampled)
        return sink

    async def close(self) -> None:
        """Stop the endpoint and free its port; the cog's unload calls it (through
        `SyncMetrics.close`). Safe to call twice."""
        if self.server is not None:
            await self.server.close()

    def run_ended(self, kind: str, outcome: str, duration_s: float | None) -> None:
        self._runs.labels(_part(kind), _part(outcome)).inc()
        if duration_s is not None:
            self._duration.labels(_part(kind)).observe(duration_s)

    def users(self, outcome: str, count: int) -> None:
        if count:
            self._users.labels(_part(outcome)).inc(count)

    def request(self, outcome: str) -> None:
        self._requests.labels(_part(outcome)).inc()

    def retry(self) -> None:
        self._retries.inc()

    def in_flight(self, requests: int) -> None:
        self._in_flight.set(requests)

    def queue_depth(self, writes: int) -> None:
        self._queue.set(writes)

    def since_full_sync(self, seconds: float) -> None:
        """Kept as the time it happened, the Prometheus idiom: the value stays right between
        samples and before the sampling starts (it waits for the member list), and the alert is
        `time() - guild_sync_last_full_sync_timestamp_seconds > 86400`, with no rate or sampling
        interval to reason about."""
        self._last_full_sync.set(self._wall_clock() - seconds)

    def breaker_open(self, kind: str, is_open: bool) -> None:
        self._breaker_open.labels(_part(kind)).set(int(is_open))

    def sample_on_scrape(self, sample: Callable[[], None]) -> None:
        """Prometheus pulls: a request in flight at the scrape is in that scrape, not in the one
        after the next sampling tick (up to `INTERVAL_S` later, or never for a short run)."""
        self._sample = sample

    def _sampled(self) -> None:
        if self._sample is not None:
            self._sample()


class MetricsServer:
    """`GET /metrics` for one registry, served by aiohttp on the running loop."""

    def __init__(
        self,
        registry: CollectorRegistry,
        sock: socket.socket,
        before_scrape: Callable[[], None] = lambda: None,
    ) -> None:
        self._registry = registry
        self._sock = sock
        self._before_scrape = before_scrape
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        # No access log: a scrape every 15 s would be a log line every 15 s.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_S)
        self._starting = asyncio.get_running_loop().create_task(
            self._start(), name="sync-metrics-endpoint"
        )
        self._closed = False

    @classmethod
    def listen(
        cls,
        registry: CollectorRegistry,
        host: str,
        port: int,
        *,
        before_scrape: Callable[[], None] = lambda: None,
    ) -> MetricsServer:
        """Bind and listen now, so a taken port raises here; connections made before aiohttp
        takes over wait in the socket's backlog. `socket.create_server` sets SO_REUSEADDR, so a
        port freed by an unload can be bound again at once."""
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.create_server(address[:2], family=family)
        try:
            return cls(registry, sock, before_scrape)
        except BaseException:
            sock.close()
            raise

    @property
    def port(self) -> int:
        """The port it listens on (the one asked for, or the free one found for port 0)."""
        return int(self._sock.getsockname()[1])

    async def _start(self) -> None:
        host, port = self._sock.getsockname()[:2]
        address = f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"
        try:
            await self._runner.setup()
            await web.SockSite(self._runner, self._sock).start()
        except Exception:
            log.exception("the sync metrics endpoint %s did not start", address)
        else:
            log.info("sync metrics served at %s", address)

    async def _metrics(self, request: web.Request) -> web.Response:
        # Prometheus asks for OpenMetrics when it can; curl gets the plain text format.
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        self._before_scrape()  # the gauges as they are now (`PrometheusSink.sample_on_scrape`)
        body = encoder(_WithoutCreated(self._registry))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            # A setup begun must end before it can be cleaned up. `wait` neither raises the
            # task's cancellation nor swallows this coroutine's own.
            await asyncio.wait([self._starting])
            await self._runner.cleanup()
        finally:
            self._sock.close()  # closed by the cleanup already, unless it never started


class _WithoutCreated(Collector):
    """The registry without its `_created` samples: in the plain text format each would be one
    more series (a gauge per counter and histogram series) that no alert reads, and the
    setting that turns them off (`disable_created_metrics`) is process-wide, the host's too.
    The series that matter exist from the start instead (see `PrometheusSink.__init__`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():  # fresh objects at every collect
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family
