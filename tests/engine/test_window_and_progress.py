"""Branch logic of the adaptive in-flight window, subscriber isolation and the rate meter."""

import asyncio

from bot.engine.progress import ChunkDone, PlanUpdated, ProgressHub, RateMeter, RunStarted
from bot.engine.sender import AdaptiveWindow


def test_window_grows_on_healthy_chunks_up_to_the_maximum_and_halves_on_trouble() -> None:
    window = AdaptiveWindow(maximum=4)
    assert window.limit == 2
    for _ in range(5):
        window.record(latency_s=1.0, items=1000, healthy=True)
    assert window.limit == 4
    window.record(latency_s=1.0, items=1000, healthy=False)
    assert window.limit == 2
    window.congested()
    window.congested()
    assert window.limit == 1


def test_a_slow_chunk_counts_as_congestion_even_without_errors() -> None:
    window = AdaptiveWindow(maximum=8)
    for _ in range(4):
        window.record(latency_s=0.5, items=1000, healthy=True)
    assert window.limit == 6
    window.record(latency_s=5.0, items=1000, healthy=True)
    assert window.limit == 3


def test_a_window_of_one_never_grows() -> None:
    window = AdaptiveWindow(maximum=1)
    window.record(latency_s=0.1, items=10, healthy=True)
    assert window.limit == 1


async def test_a_slow_subscriber_does_not_stall_publishing_or_other_subscribers() -> None:
    hub = ProgressHub()
    fast: list[object] = []
    release, all_seen = asyncio.Event(), asyncio.Event()

    def quick(event: object) -> None:
        fast.append(event)
        if len(fast) == 100:
            all_seen.set()

    async def slow(event: object) -> None:
        await release.wait()

    hub.subscribe(slow)
    hub.subscribe(quick)
    for i in range(100):
        hub.publish(ChunkDone("r", True, i, 0.1, 1))
    async with asyncio.timeout(2):
        await all_seen.wait()
        release.set()
        await hub.idle()
    await hub.close()


def test_rate_meter_computes_rate_and_eta_from_chunk_events() -> None:
    now = [0.0]
    meter = RateMeter(clock=lambda: now[0])
    meter.feed(RunStarted("r", "users", "test"))
    meter.feed(PlanUpdated("r", {"update": 3000, "create": 1000}, 0))
    for second in range(3):
        now[0] = float(second)
        meter.feed(ChunkDone("r", True, 1000, 0.5, 1))
    assert meter.rate == 1000.0
    assert meter.eta_s == 1.0
