"""The adaptive window's rules (guild_sync/engine/limiter.py), on a clock the test moves by hand,
then against the sandbox site's cost model on a virtual clock (tests/engine/capacity_sim.py)."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from guild_sync.engine.limiter import SAMPLES, AdaptiveWindow
from tests.engine.capacity_sim import Simulation, role_removal_chunks


class Site:
    """A site with `capacity` requests' worth of room: up to it, requests in flight overlap;
    past it they queue, so a chunk takes `service_s * limit / capacity`. Chunks go out one
    round of `limit` at a time, all in flight together, answered together."""

    def __init__(self, maximum: int, capacity: int, service_s: float = 1.0) -> None:
        self.now = 0.0
        self.capacity = capacity
        self.service_s = service_s
        self.window = AdaptiveWindow(maximum, clock=lambda: self.now)
        self.limits: list[int] = []

    async def rounds(self, count: int) -> list[int]:
        """Play `count` rounds; the limit each was sent at."""
        window, played = self.window, []
        for _ in range(count):
            limit = window.limit
            for _ in range(limit):
                await window.acquire()  # never waits: the round fills the window exactly
            stamps = [window.sent() for _ in range(limit)]
            self.now += self.service_s * max(1.0, limit / self.capacity)
            for stamp in stamps:
                window.record(stamp, 1000, healthy=True)
            for _ in stamps:
                window.release()
            played.append(limit)
        self.limits += played
        return played


async def test_it_starts_at_one_and_grows_while_throughput_rises_up_to_the_capacity() -> None:
    site = Site(maximum=8, capacity=3)
    assert site.window.limit == 1
    await site.rounds(60)
    assert site.window.settled == 3
    assert max(site.limits) == 4  # probed, never kept
    late = Counter(site.limits[20:])
    assert late[3] > 3 * late[4]  # mostly at the capacity, a probe above now and then
    assert [d.limit for d in site.window.decisions][:3] == [2, 3, 4]
    assert site.window.decisions[3].reason == "latency rose without throughput gain"


async def test_a_site_without_room_for_a_second_request_keeps_one_in_flight() -> None:
    site = Site(maximum=8, capacity=1)
    await site.rounds(100)
    assert site.window.settled == 1
    assert max(site.limits) == 2
    at_two = site.limits.count(2)
    assert at_two < 0.2 * len(site.limits)  # the probes wait longer after each failure
    probes = [i for i, pair in enumerate(pairwise(site.limits)) if pair == (1, 2)]
    intervals = [later - earlier for earlier, later in pairwise(probes)]
    assert len(intervals) >= 3
    assert intervals == sorted(intervals) and intervals[-1] > intervals[0]


async def test_it_never_goes_above_the_maximum_however_much_room_the_site_has() -> None:
    site = Site(maximum=5, capacity=1000)
    await site.rounds(40)
    assert max(site.limits) == 5
    assert site.window.limit == site.window.settled == 5
    assert site.window.peak_in_flight == 5
    single = Site(maximum=1, capacity=1000)
    await single.rounds(30)
    assert set(single.limits) == {1}
    assert list(single.window.decisions) == []
    with pytest.raises(ValueError):
        AdaptiveWindow(0)


async def test_it_backs_off_when_latency_rises_without_throughput_gain() -> None:
    site = Site(maximum=8, capacity=3)
    await site.rounds(30)
    assert site.window.settled == 3
    site.capacity = 1  # the site lost room (another client, fewer workers): latency triples
    await site.rounds(40)
    assert site.window.settled == 1
    reasons = [d.reason for d in site.window.decisions]
    assert "latency rose" in reasons
    assert "one fewer in flight kept the throughput" in reasons
    assert max(site.limits[-20:]) <= 2


async def test_a_slower_site_that_still_overlaps_requests_keeps_its_window() -> None:
    site = Site(maximum=8, capacity=3)
    await site.rounds(30)
    site.service_s = 2.0  # every answer twice as slow, but three in flight still pay
    await site.rounds(30)
    assert site.window.settled == 3
    reasons = [d.reason for d in site.window.decisions]
    assert "one fewer in flight lowered throughput" in reasons  # looked, and went back


async def test_a_retry_halves_the_window_at_once_and_it_regrows_only_by_measuring() -> None:
    site = Site(maximum=8, capacity=1000)
    await site.rounds(40)
    assert site.window.limit == 8
    site.window.congested()  # the client's retry hook (SyncEngine._on_retry)
    assert (site.window.limit, site.window.settled) == (4, 4)
    site.window.congested()
    site.window.congested()
    assert site.window.limit == 1
    site.window.congested()
    assert site.window.limit == 1  # never below 1
    first = await site.rounds(SAMPLES + 2)
    assert first[: SAMPLES + 1] == [1] * (SAMPLES + 1)  # waits a measurement before probing
    await site.rounds(40)
    assert site.window.limit == 8


async def test_an_answer_after_retries_does_not_halve_the_window_twice() -> None:
    window = AdaptiveWindow(8, clock=lambda: 0.0)
    window.limit = window.settled = 8
    retried = window.sent()
    window.congested()  # its request was retried while in flight
    assert window.limit == 4
    window.record(retried, 10, healthy=False)
    assert window.limit == 4  # already halved for that trouble
    failed = window.sent()  # a chunk that failed without a retry (a client with one attempt)
    window.record(failed, 10, healthy=False)
    assert window.limit == 2


async def test_answers_of_chunks_sent_before_a_change_do_not_measure_the_new_limit() -> None:
    now = [0.0]
    window = AdaptiveWindow(8, clock=lambda: now[0])
    old = [window.sent() for _ in range(3)]
    window.congested()  # a new measurement starts now
    now[0] = 100.0
    for stamp in old:  # very slow answers of chunks sent before it
        window.record(stamp, 1000, healthy=True)
    # One to warm up, then SAMPLES quick answers measure 1 (after a halving the window
    # measures once before it probes), then SAMPLES more.
    for _ in range(1 + 2 * SAMPLES):
        await window.acquire()
        stamp = window.sent()
        now[0] += 1.0
        window.record(stamp, 1000, healthy=True)
        window.release()
    assert window.limit == 2  # probing: measured at 1 from the quick answers alone
    assert window.decisions[-1].throughput == pytest.approx(1000.0)


# -- against the cost model (site-api.md's 80,000-member role removal, 80 chunks of 1,000) ---


async def _role_removal(workers: int, maximum: int):
    simulation = Simulation(workers=workers, maximum=maximum)
    try:
        return await simulation.play(role_removal_chunks())
    finally:
        simulation.close()


async def test_on_one_worker_it_settles_at_one_and_costs_no_more_site_cpu() -> None:
    single = await _role_removal(workers=1, maximum=1)
    adaptive = await _role_removal(workers=1, maximum=3)
    assert adaptive.peak_in_flight == 2
    assert adaptive.window.settled == 1
    assert adaptive.limits.count(1) > 0.6 * len(adaptive.limits)
    assert adaptive.cpu_s <= 1.05 * single.cpu_s  # each probe at 2 pays the contention
    assert adaptive.cpu_s > single.cpu_s
    assert adaptive.wall_s <= 1.05 * single.wall_s


async def test_on_two_workers_it_settles_at_two_and_halves_the_wall_time() -> None:
    single = await _role_removal(workers=2, maximum=1)
    adaptive = await _role_removal(workers=2, maximum=3)
    assert adaptive.window.settled == 2
    assert adaptive.peak_in_flight == 3  # probes, not kept
    assert adaptive.wall_s <= 0.55 * single.wall_s
    assert adaptive.cpu_s == pytest.approx(single.cpu_s)  # sync workers: no contention


async def test_it_finds_four_workers_below_a_larger_maximum() -> None:
    adaptive = await _role_removal(workers=4, maximum=8)
    assert adaptive.window.settled == 4
    assert max(adaptive.limits) == 5


async def test_when_another_client_takes_a_worker_the_window_comes_down() -> None:
    simulation = Simulation(workers=2, maximum=3)

    def take_a_worker(index: int, sim: Simulation) -> None:
        if index == 30:
            sim.hog(3600.0)  # another client's long request holds one worker from here on

    try:
        played = await simulation.play(role_removal_chunks(), take_a_worker)
    finally:
        simulation.close()
    assert Counter(played.limits[:30]).most_common(1)[0][0] == 2
    assert played.window.settled == 1
    assert Counter(played.limits[50:]).most_common(1)[0][0] == 1
