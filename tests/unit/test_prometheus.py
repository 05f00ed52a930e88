"""Without `bot.stats`, SYNC_METRICS_PORT serves the statsd path's metrics to Prometheus.

Real sockets throughout: the sink's aiohttp endpoint on a port of 127.0.0.1, scraped over HTTP by
an aiohttp client and read with prometheus_client's own parsers, and fed as test_metrics.py feeds
statsd (its real statsd server and client, a real engine against the sandbox site, `Runs`). The
first test sends every call to both sinks at once, so the two paths are compared number for
number. The extension itself is loaded, reloaded and unloaded on a real (not logged in)
discord.py bot, to show the port is freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord
import pytest
from discord.ext import commands
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families

from bot.sandbox.site import FaultConfig
from guild_sync.config import load_settings
from guild_sync.engine import ChunkDone, ChunkFailed, Retrying
from guild_sync.exts.sync._bookkeeping import RunBook
from guild_sync.exts.sync._metrics import MetricsSink, NullSink, StatsdSink, SyncMetrics, sink_for
from guild_sync.exts.sync._prometheus import KINDS, PrometheusSink
from guild_sync.exts.sync._runs import COMMAND, STARTUP, Runs
from tests.engine.conftest import BULK_PATCH, TOKEN, close_rig, make_rig, person
from tests.unit import test_metrics
from tests.unit.test_metrics import host_bot

pytestmark = pytest.mark.timeout(60)

statsd = test_metrics.statsd
"""test_metrics.py's fixture: a statsd server on 127.0.0.1 and pydis_core's client sending to it."""
EXTENSION = "guild_sync.exts.sync"
WALL = 1_700_000_000.0
"""The tests' wall clock when their monotonic clock reads 0."""

FAMILIES = {
    "guild_sync_runs": ("counter", {"kind", "outcome"}),
    "guild_sync_run_duration_seconds": ("histogram", {"kind"}),
    "guild_sync_users": ("counter", {"outcome"}),
    "guild_sync_requests": ("counter", {"outcome"}),
    "guild_sync_retries": ("counter", set()),
    "guild_sync_requests_in_flight": ("gauge", set()),
    "guild_sync_queue_depth": ("gauge", set()),
    "guild_sync_last_full_sync_timestamp_seconds": ("gauge", set()),
    "guild_sync_breaker_open": ("gauge", {"kind"}),
}
"""Every family the endpoint exposes: its type and its labels (a histogram's `le` aside)."""


class Tee:
    """Every call to both sinks, so statsd and Prometheus see exactly the same events."""

    def __init__(self, *sinks: MetricsSink) -> None:
        self.sinks = sinks

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any) -> None:
            for sink in self.sinks:
                getattr(sink, name)(*args)

        return call


class WithMetrics:
    """Settings plus the metrics fields, whether or not guild_sync/config.py has them yet."""

    def __init__(self, settings: object, port: int | None, host: str = "127.0.0.1") -> None:
        self._settings = settings
        self.metrics_port = port
        self.metrics_host = host

    def __getattr__(self, name: str) -> Any:
        return getattr(self._settings, name)


def bot_settings() -> Any:
    """What the extension needs to load on a bot that never logs in."""
    return load_settings({"GUILD_ID": "1", "SYNC_LOG_CHANNEL_ID": "2"}, env_file=None)


@dataclass
class Scrape:
    """One answer of `/metrics`, parsed."""

    body: str
    content_type: str
    families: dict[str, tuple[str, set[str]]]
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def __call__(self, name: str, **labels: str) -> float:
        return self.samples[name, frozenset(labels.items())]


async def scrape(port: int, session: aiohttp.ClientSession | None = None, **headers: str) -> Scrape:
    """GET /metrics over HTTP, as Prometheus does (the plain text format unless asked)."""
    async with contextlib.AsyncExitStack() as stack:
        if session is None:
            session = await stack.enter_async_context(aiohttp.ClientSession())
        async with session.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as response:
            assert response.status == 200
            body = await response.text()
            content_type = response.headers["Content-Type"]
    parse = openmetrics_families if "openmetrics" in content_type else text_families
    families, samples = {}, {}
    for family in parse(body):
        labels = {name for sample in family.samples for name in sample.labels} - {"le"}
        families[family.name] = (family.type, labels)
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return Scrape(body, content_type, families, samples)


def kind_of(sink: object) -> str:
    """A loaded cog's sink class, by name: a reload imports the extension's modules anew, so
    after one the cog's classes are not those this file imported."""
    return type(sink).__name__


def listening_sockets() -> set[str]:
    """The local addresses of the TCP sockets this process listens on (Linux's /proc)."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("reads the listening sockets from Linux's /proc")
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the fd of the listing itself is gone by now
            ours.add(os.readlink(f"/proc/self/fd/{fd}"))
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and f"socket:[{fields[9]}]" in ours:  # 0A: LISTEN
                found.add(fields[1])
    return found


def refused(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port` (a connection is refused)."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
async def free_port() -> int:
    """A port the sink has just listened on and freed: a second sink can bind it."""
    sink = PrometheusSink.serve("127.0.0.1", 0)
    assert sink.server is not None
    port = sink.server.port
    await sink.close()
    return port


@pytest.fixture
async def prometheus() -> AsyncIterator[PrometheusSink]:
    sink = PrometheusSink.serve("127.0.0.1", 0)
    yield sink
    await sink.close()


async def test_test_metrics_events_reach_prometheus_with_the_statsd_numbers(statsd, prometheus):
    # As test_metrics' first test: one lost answer (a retry), one rejected record, then a site
    # refusing every write (failed requests and users).
    rig, site = await make_rig(faults=FaultConfig(drop_route=BULK_PATCH, drop_times=1), attempts=2)
    try:
        metrics = SyncMetrics(Tee(StatsdSink(host_bot(statsd)), prometheus))
        metrics.attach(rig.engine)
        rig.seed([], [person(i) for i in range(1, 41)])
        for i in range(1, 31):
            rig.guild.add_member(person(i, f"new{i}"))
        rig.guild.add_member(person(7, "x" * 33))
        first = await asyncio.wait_for(rig.engine.sync_users(), 20)
        site.faults.configure(FaultConfig(reject_writes=True), reseed=True)
        for i in range(31, 41):
            rig.guild.add_member(person(i, f"new{i}"))
        second = await asyncio.wait_for(rig.engine.sync_users(), 20)
        await rig.engine.hub.idle()
        sent = (await statsd.read_all()).counters
        assert prometheus.server is not None
        got = await scrape(prometheus.server.port)
        open_metrics = await scrape(
            prometheus.server.port, Accept="application/openmetrics-text; version=1.0.0"
        )
    finally:
        await close_rig(rig)

    assert (first.status, second.status) == ("partial", "failed")
    assert got.families == FAMILIES
    assert got.content_type.startswith("text/plain")
    written = got("guild_sync_users_total", outcome="written")
    assert written == sent["bot.sync.users_written"] == first.written + second.written == 39
    assert got("guild_sync_users_total", outcome="rejected") == sent["bot.sync.users_rejected"] == 1
    assert got("guild_sync_users_total", outcome="failed") == sent["bot.sync.users_failed"] == 11
    failed = got("guild_sync_requests_total", outcome="failed")
    assert failed == sent["bot.sync.requests.failed"] == len(rig.of_type(ChunkFailed)) == 2
    ok = got("guild_sync_requests_total", outcome="ok")
    assert ok == sent["bot.sync.requests.ok"] == sum(e.ok for e in rig.of_type(ChunkDone)) >= 3
    retries = rig.of_type(Retrying)
    assert got("guild_sync_retries_total") == sent["bot.sync.retries"] == len(retries) >= 2
    retried = got("guild_sync_requests_total", outcome="retried")
    assert retried == sent["bot.sync.requests.retried"] == sum(e.attempt == 1 for e in retries)
    # Only runs' ends count runs: the engine's own runs here went through no `Runs`.
    assert got("guild_sync_runs_total", kind="users", outcome="failed") == 0
    assert TOKEN not in got.body and site.url not in got.body  # no secret, no address
    # Prometheus asks for OpenMetrics: the same numbers in that format.
    assert open_metrics.content_type.startswith("application/openmetrics-text")
    assert open_metrics.body.endswith("# EOF\n")
    assert open_metrics("guild_sync_users_total", outcome="written") == 39
    assert open_metrics("guild_sync_retries_total") == len(retries)


async def test_run_ends_refusals_and_gauges_arrive_through_runs():
    rig, _ = await make_rig()
    now = [1000.0]
    ticks: asyncio.Queue[None] = asyncio.Queue()
    sampled: asyncio.Queue[None] = asyncio.Queue()

    async def next_tick(_: float) -> None:
        sampled.put_nowait(None)  # the sampling loop sleeps only after its sample
        await ticks.get()

    sink = PrometheusSink.serve("127.0.0.1", 0, wall_clock=lambda: WALL + now[0])
    metrics = SyncMetrics(sink, clock=lambda: now[0], sleep=next_tick)
    assert sink.server is not None
    port = sink.server.port

    async def post(text: str, **_: object) -> None:
        pass

    runs = Runs(
        settings=load_settings({}, env_file=None),
        engine=rig.engine,
        book=RunBook(None, threshold=3, unavailable="no journal in this test"),
        channel=lambda: None,
        post=post,
        metrics=metrics,
    )
    loaded = await scrape(port)  # before the sampling loop's first (it waits for the members)
    sampling = asyncio.create_task(metrics.watch(rig.engine))
    try:
        now[0] = 1090.0
        await sampled.get()
        started = await scrape(port)
        rig.seed([], [person(i) for i in range(1, 11)])
        for i in range(1, 11):
            rig.guild.add_member(person(i, f"new{i}"))
        now[0] = 1300.0
        report = await runs.run("users", trigger=COMMAND)
        assert report is not None and report.status == "finished"
        assert await runs.run("users", trigger=STARTUP) is None  # no journal: refused
        dry = await runs.run("roles", trigger=COMMAND, dry_run=True)
        assert dry is not None and dry.dry_run
        ended = await scrape(port)

        now[0] = 1360.0
        ticks.put_nowait(None)
        await sampled.get()
        first = await scrape(port)
        rig.engine.pause()  # queued writes stay queued: the queue's depth is known
        for i in (1, 2, 3):
            rig.engine.enqueue_member(i, {"name"})
        await rig.engine.window.acquire()  # a request in flight, as the sender takes a slot
        now[0] = 1420.0
        ticks.put_nowait(None)
        await sampled.get()
        second = await scrape(port)
        rig.engine.window.release()
        rig.engine.resume()
    finally:
        sampling.cancel()
        await sink.close()
        await close_rig(rig)

    last = "guild_sync_last_full_sync_timestamp_seconds"
    # Until a user sync succeeds, the time the extension loaded: right before the first sample.
    assert loaded(last) == started(last) == WALL + 1000
    assert ended("guild_sync_runs_total", kind="users", outcome="finished") == 1
    assert ended("guild_sync_runs_total", kind="users", outcome="refused") == 1
    assert ended("guild_sync_runs_total", kind="roles", outcome="dry_run") == 1
    assert ended("guild_sync_runs_total", kind="role_delete", outcome="failed") == 0  # exists
    assert ended("guild_sync_run_duration_seconds_count", kind="users") == 1  # not the refused
    assert ended("guild_sync_run_duration_seconds_count", kind="roles") == 1
    assert ended("guild_sync_run_duration_seconds_bucket", kind="users", le="+Inf") == 1
    assert ended("guild_sync_users_total", outcome="written") == 10
    # The success set it at once, with the engine's state after the run; samples keep it.
    assert ended(last) == first(last) == second(last) == WALL + 1300
    assert ended("guild_sync_requests_in_flight") == ended("guild_sync_queue_depth") == 0
    assert second("guild_sync_requests_in_flight") == 1
    assert second("guild_sync_queue_depth") == 3


async def test_a_scrape_reads_the_gauges_of_its_moment_not_of_the_last_tick(prometheus):
    """Prometheus pulls: a request in flight when it scrapes is in that scrape, though the
    sampling loop (every 10 s) has not ticked since."""
    rig, _ = await make_rig()

    async def never(_: float) -> None:
        await asyncio.Event().wait()

    try:
        metrics = SyncMetrics(prometheus, sleep=never)  # the loop samples once, then sleeps
        sampling = asyncio.create_task(metrics.watch(rig.engine))
        assert prometheus.server is not None
        idle = await scrape(prometheus.server.port)
        await rig.engine.window.acquire()  # a request in flight, as the sender takes a slot
        busy = await scrape(prometheus.server.port)
        rig.engine.window.release()
        after = await scrape(prometheus.server.port)
        sampling.cancel()
    finally:
        await close_rig(rig)
    assert [s("guild_sync_requests_in_flight") for s in (idle, busy, after)] == [0, 1, 0]


async def test_the_breaker_gauge_follows_the_journal_on_both_sinks(statsd, prometheus, tmp_path):
    """`guild_sync_breaker_open{kind}` (statsd: `sync.breaker_open.<kind>`) is 1 from the
    automatic run that opens the breaker until a moderator's run closes it, and a restart on the
    same journal reads it as open before any run."""
    rig, site = await make_rig(faults=FaultConfig(reject_writes=True), attempts=1)
    journal_url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    posted: list[str] = []

    async def post(text: str, **_: object) -> None:
        posted.append(text)

    def runs_on(book: RunBook, sink: MetricsSink) -> Runs:
        return Runs(
            settings=load_settings({}, env_file=None),
            engine=rig.engine,
            book=book,
            channel=lambda: None,
            post=post,
            metrics=SyncMetrics(sink),
        )

    restarted = PrometheusSink.serve("127.0.0.1", 0)
    assert prometheus.server is not None and restarted.server is not None
    port, restarted_port = prometheus.server.port, restarted.server.port
    book = await RunBook.open(journal_url, threshold=2)
    try:
        runs = runs_on(book, Tee(StatsdSink(host_bot(statsd)), prometheus))
        await book.recover()  # as the cog's start-up does
        loaded = await scrape(port)
        rig.seed([], [person(i) for i in range(1, 6)])
        for i in range(1, 6):
            rig.guild.add_member(person(i, f"new{i}" if i <= 3 else ""))
        # Automatic runs against a site refusing every write: the second opens the breaker.
        first = await runs.run("users", trigger=STARTUP)
        after_one = await scrape(port)
        second = await runs.run("users", trigger=STARTUP)
        opened = await scrape(port)
        sent = (await statsd.read_all()).gauges
        assert await runs.run("users", trigger=STARTUP) is None  # refused: it is open
        still = await scrape(port)

        # A restart: a new book on the same journal, the gauge open before any run.
        await book.close()
        book = await RunBook.open(journal_url, threshold=2)
        restarted_runs = runs_on(book, restarted)
        before_recovery = await scrape(restarted_port)
        await book.recover()
        recovered = await scrape(restarted_port)
        site.faults.configure(FaultConfig(), reseed=False)  # the site is fixed
        manual = await restarted_runs.run("users", trigger=COMMAND)
        closed = await scrape(restarted_port)
    finally:
        await book.close()
        await restarted.close()
        await close_rig(rig)

    assert first is not None and second is not None and first.status == second.status == "failed"
    assert manual is not None and manual.status == "finished"
    assert any("Automatic syncs paused" in text for text in posted), posted

    def breaker(scraped: Scrape) -> dict[str, float]:
        return {kind: scraped("guild_sync_breaker_open", kind=kind) for kind in KINDS}

    closed_all = {"roles": 0, "users": 0, "role_delete": 0}
    assert breaker(loaded) == breaker(after_one) == closed_all
    assert breaker(opened) == breaker(still) == {**closed_all, "users": 1}
    assert sent["bot.sync.breaker_open.users"] == 1
    assert sent["bot.sync.breaker_open.roles"] == sent["bot.sync.breaker_open.role_delete"] == 0
    assert breaker(before_recovery) == closed_all  # not read yet
    assert breaker(recovered) == {**closed_all, "users": 1}
    assert breaker(closed) == closed_all


async def test_an_unload_closes_the_endpoint_and_a_reload_listens_again(free_port):
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())
    bot.sync_settings = WithMetrics(bot_settings(), free_port)  # type: ignore[attr-defined]
    await bot.load_extension(EXTENSION)
    # A Prometheus server keeps its connection open between scrapes: the unload must not wait
    # for it, and must free the port all the same.
    async with aiohttp.ClientSession() as prometheus:
        cog = bot.get_cog("Sync")
        assert kind_of(cog.metrics.sink) == "PrometheusSink"
        cog.metrics.sink.retry()
        assert (await scrape(free_port, prometheus))("guild_sync_retries_total") == 1

        await bot.reload_extension(EXTENSION)
        reloaded = bot.get_cog("Sync")
        assert reloaded is not cog
        assert (await scrape(free_port, prometheus))("guild_sync_retries_total") == 0  # its own

        await bot.unload_extension(EXTENSION)
        assert refused(free_port)
    second = PrometheusSink.serve("127.0.0.1", free_port)
    try:
        assert (await scrape(free_port))("guild_sync_retries_total") == 0
    finally:
        await second.close()
        await second.close()  # twice is harmless
    assert refused(free_port)


async def test_without_a_port_or_with_statsd_nothing_listens(free_port):
    before = listening_sockets()
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())
    bot.sync_settings = bot_settings()  # type: ignore[attr-defined]  # no metrics field at all
    await bot.load_extension(EXTENSION)
    try:
        assert kind_of(bot.get_cog("Sync").metrics.sink) == "NullSink"
        assert isinstance(sink_for(SimpleNamespace(), WithMetrics(bot_settings(), None)), NullSink)
        # The host's statsd wins over the port (pydis_core's bots: `stats` is None until setup).
        with_stats = sink_for(SimpleNamespace(stats=None), WithMetrics(bot_settings(), free_port))
        assert isinstance(with_stats, StatsdSink)
        assert listening_sockets() == before
        assert refused(free_port)
    finally:
        await bot.unload_extension(EXTENSION)


async def test_a_taken_port_is_logged_and_the_extension_loads_without_metrics(caplog):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="guild_sync.exts.sync._metrics"):
            metrics = SyncMetrics.of(SimpleNamespace(), WithMetrics(bot_settings(), port))
    assert isinstance(metrics.sink, NullSink)
    await metrics.close()
    [record] = caplog.records
    assert "SYNC_METRICS_PORT" in record.getMessage() and str(port) in record.getMessage()
