"""The sync's metrics reach a statsd server through the host's `bot.stats`: pydis_core's real
`AsyncStatsClient` sending UDP datagrams to a socket this test reads on 127.0.0.1, fed by a real
engine syncing against the sandbox site (tests/engine's rig) and by `Runs`' run ends."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from pydis_core.async_stats import AsyncStatsClient

from bot.sandbox.site import FaultConfig
from guild_sync.config import load_settings
from guild_sync.engine import BadRecords, ChunkDone, ChunkFailed, Retrying
from guild_sync.exts.sync._bookkeeping import RunBook
from guild_sync.exts.sync._metrics import NullSink, StatsdSink, SyncMetrics, sink_for
from guild_sync.exts.sync._runs import COMMAND, STARTUP, Runs
from tests.engine.conftest import BULK_PATCH, close_rig, make_rig, person

pytestmark = pytest.mark.timeout(60)

END = "bot.test.end"
"""A counter sent after what a test waits for: datagrams on loopback arrive in order, so once it
is read everything sent before it has been."""


class StatsdServer(asyncio.DatagramProtocol):
    """The statsd server's side: every line of every datagram, in the order they arrived."""

    def __init__(self) -> None:
        self.lines: asyncio.Queue[str] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        for line in data.decode("ascii").splitlines():
            self.lines.put_nowait(line)


@dataclass
class Stats:
    """What the server received, read up to a point."""

    counters: Counter[str] = field(default_factory=Counter)
    gauges: dict[str, float] = field(default_factory=dict)
    timings: dict[str, list[float]] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)

    def add(self, line: str) -> None:
        name, rest = line.split(":", 1)
        value, kind = rest.split("|")[:2]
        self.names.add(name)
        if kind == "c":
            self.counters[name] += int(value)
        elif kind == "g":
            self.gauges[name] = float(value)
        elif kind == "ms":
            self.timings.setdefault(name, []).append(float(value))


@dataclass
class Statsd:
    client: AsyncStatsClient
    server: StatsdServer

    async def read_all(self) -> Stats:
        """Everything sent so far (the END marker is sent now and read last)."""
        self.client.incr(END.removeprefix("bot."))
        stats = Stats()
        async with asyncio.timeout(10):
            while (line := await self.server.lines.get()) != f"{END}:1|c":
                stats.add(line)
        return stats

    async def read_until(self, name: str) -> Stats:
        """What arrives up to and including the first datagram for `name`."""
        stats = Stats()
        async with asyncio.timeout(10):
            while True:
                line = await self.server.lines.get()
                stats.add(line)
                if line.startswith(f"{name}:"):
                    return stats


@pytest.fixture
async def statsd() -> AsyncIterator[Statsd]:
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(
        StatsdServer, local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    client = AsyncStatsClient(loop, "127.0.0.1", port, prefix="bot")  # as pydis_core's bots
    await client.create_socket()
    yield Statsd(client, server)
    assert client._transport is not None
    client._transport.close()
    transport.close()


def host_bot(statsd: Statsd) -> SimpleNamespace:
    """The part of a pydis_core bot the extension uses for metrics."""
    return SimpleNamespace(stats=statsd.client)


async def test_chunks_retries_rejected_and_failed_writes_arrive_as_statsd_counters(statsd):
    # The first bulk_patch's answer is lost (applied, then the connection closed): one retry.
    rig, site = await make_rig(faults=FaultConfig(drop_route=BULK_PATCH, drop_times=1), attempts=2)
    try:
        metrics = SyncMetrics(sink_for(host_bot(statsd)))
        metrics.attach(rig.engine)
        rig.seed([], [person(i) for i in range(1, 41)])
        for i in range(1, 31):
            rig.guild.add_member(person(i, f"new{i}"))
        rig.guild.add_member(person(7, "x" * 33))  # over the site's 32 characters: rejected
        first = await asyncio.wait_for(rig.engine.sync_users(), 20)
        site.faults.configure(FaultConfig(reject_writes=True), reseed=True)
        for i in range(31, 41):
            rig.guild.add_member(person(i, f"new{i}"))
        second = await asyncio.wait_for(rig.engine.sync_users(), 20)
        await rig.engine.hub.idle()
        stats = await statsd.read_all()
    finally:
        await close_rig(rig)

    # 29 renamed, 10 marked left (on the site, not yet in the guild), 1 rejected.
    assert (first.status, first.updated, first.left, first.failed) == ("partial", 29, 10, 1)
    assert (second.status, second.failed) == ("failed", 11)  # user 7 is tried again
    c = stats.counters
    assert c["bot.sync.users_written"] == first.written + second.written == 39
    assert c["bot.sync.users_rejected"] == 1
    assert c["bot.sync.users_failed"] == 11
    assert c["bot.sync.requests.failed"] == len(rig.of_type(ChunkFailed)) == 2  # 10 + 1 users
    assert c["bot.sync.requests.ok"] == sum(e.ok for e in rig.of_type(ChunkDone)) >= 3
    retries = rig.of_type(Retrying)
    assert c["bot.sync.retries"] == len(retries) >= 2  # the lost answer and the refused write
    assert c["bot.sync.requests.retried"] == sum(e.attempt == 1 for e in retries) >= 2
    assert len(rig.of_type(BadRecords)) == 1
    assert all(name.startswith("bot.sync.") for name in stats.names)


async def test_run_ends_refusals_and_gauges_arrive_through_runs(statsd):
    rig, _ = await make_rig()
    now = [1000.0]
    ticks: asyncio.Queue[None] = asyncio.Queue()

    async def next_tick(_: float) -> None:
        await ticks.get()

    metrics = SyncMetrics(sink_for(host_bot(statsd)), clock=lambda: now[0], sleep=next_tick)
    posted: list[str] = []

    async def post(text: str, **_: object) -> None:
        posted.append(text)

    runs = Runs(
        settings=load_settings({}, env_file=None),
        engine=rig.engine,
        book=RunBook(None, threshold=3, unavailable="no journal in this test"),
        channel=lambda: None,
        post=post,
        metrics=metrics,
    )
    # As the cog does: the sampling loop first (a sample at once, then one per tick of its
    # test-driven sleep), then runs.
    sampling = asyncio.create_task(metrics.watch(rig.engine))
    try:
        now[0] = 1090.0
        started = await statsd.read_until("bot.sync.seconds_since_full_sync")
        rig.seed([], [person(i) for i in range(1, 11)])
        for i in range(1, 11):
            rig.guild.add_member(person(i, f"new{i}"))
        now[0] = 1300.0
        report = await runs.run("users", trigger=COMMAND)
        assert report is not None and report.status == "finished"
        assert await runs.run("users", trigger=STARTUP) is None  # no journal: refused
        dry = await runs.run("roles", trigger=COMMAND, dry_run=True)
        assert dry is not None and dry.dry_run
        ended = await statsd.read_all()

        now[0] = 1360.0
        ticks.put_nowait(None)
        first = await statsd.read_until("bot.sync.seconds_since_full_sync")
        rig.engine.pause()  # queued writes stay queued: the queue's depth is known
        for i in (1, 2, 3):
            rig.engine.enqueue_member(i, {"name"})
        await rig.engine.window.acquire()  # a request in flight, as the sender takes a slot
        now[0] = 1420.0
        ticks.put_nowait(None)
        second = await statsd.read_until("bot.sync.seconds_since_full_sync")
        rig.engine.window.release()
        rig.engine.resume()
    finally:
        sampling.cancel()
        await close_rig(rig)

    # Until a full sync succeeds, the gauge counts from the extension's load.
    assert started.gauges["bot.sync.seconds_since_full_sync"] == 90
    assert ended.counters["bot.sync.runs.users.finished"] == 1
    assert ended.counters["bot.sync.runs.users.refused"] == 1
    assert ended.counters["bot.sync.runs.roles.dry_run"] == 1
    assert len(ended.timings["bot.sync.run_duration.users"]) == 1  # none for the refused run
    assert len(ended.timings["bot.sync.run_duration.roles"]) == 1
    assert ended.counters["bot.sync.users_written"] == 10
    # The success reset the gauge at once, with the engine's state after the run.
    assert ended.gauges["bot.sync.seconds_since_full_sync"] == 0
    assert ended.gauges["bot.sync.requests_in_flight"] == 0
    assert ended.gauges["bot.sync.queue_depth"] == 0
    assert first.gauges["bot.sync.seconds_since_full_sync"] == 60
    assert second.gauges == {
        "bot.sync.requests_in_flight": 1,
        "bot.sync.queue_depth": 3,
        "bot.sync.seconds_since_full_sync": 120,
    }


async def test_without_bot_stats_nothing_is_sent_and_nothing_fails():
    assert isinstance(sink_for(SimpleNamespace()), NullSink)
    # pydis_core's bots have `stats` from construction, None until setup_hook sets the client.
    early = sink_for(SimpleNamespace(stats=None))
    assert isinstance(early, StatsdSink)
    metrics = SyncMetrics(early)
    metrics.run_refused("users")
    metrics.sample()
    metrics.feed(ChunkDone("r1", ok=True, items=10, latency_s=0.1, in_flight=1))
