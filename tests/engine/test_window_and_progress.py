"""Subscriber isolation and the rate meter (the adaptive window's rules: test_limiter.py)."""

import asyncio

from guild_sync.engine.progress import ChunkDone, PlanUpdated, ProgressHub, RateMeter, RunStarted


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
