"""How many chunks may be in flight: a window that finds the site's capacity by measuring it.

The site never answers 429 (shared/site-api.md), so the sender has to find how much concurrency
pays from what it can see: each chunk's latency. By Little's law the throughput at a limit is
the number in flight divided by the latency, so a site with room for another request answers it
without the others slowing down (throughput rises), and a site at capacity queues it (latency
rises, throughput does not). The window climbs one step at a time and keeps a step only when it
paid, as the gradient and Vegas limiters of Netflix's concurrency-limits do, but decides on
throughput measured at each limit rather than on a latency threshold:

- it starts at 1 and measures a few answers at the limit (throughput and latency per item);
- it then probes one more in flight; the probe is kept when the throughput rose by at least
  GAIN_SHARE of what a perfectly parallel site would give (1/L more at L in flight), and the
  window probes again; otherwise it goes back and waits before probing again, twice as long
  after each failed probe (up to MAX_PROBE_WAIT measurements), so a one-process site spends
  little time at 2 and none at 3;
- at its settled limit, when the latency per item rises more than LATENCY_RISE above the best
  seen there, it probes one fewer; when the extra request no longer paid, it settles there and
  probes one fewer again, until one fewer costs throughput (or the limit is 1);
- a retry or a failed chunk halves the limit at once and forgets what was measured (the site is
  in trouble, its old figures no longer hold);
- never above the configured maximum (SYNC_MAX_IN_FLIGHT), never below 1.

After each change of limit the answers of chunks sent before it, and of those sent before the
first chunk sent after it was answered, are not counted: they waited behind the previous
limit's requests. Time comes from `clock`, so tests drive the window on a virtual clock.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

GAIN_SHARE = 0.3
"""An extra request in flight is kept when it raised the throughput by at least this share of
the ideal 1/L: +30 % from 1 to 2, +15 % from 2 to 3, +10 % from 3 to 4."""
SAMPLES = 3
"""Fewest answers that measure one limit; at least two rounds of the window (2 * limit) as well,
so that they cover the queue's cycle at the site: with 3 in flight on 2 workers the answers
alternate between one and two service times, and three of them (1, 2, 1) would read 12 % too
much throughput. A measurement then lasts about two latencies whatever the limit."""
LATENCY_RISE = 0.5
"""At the settled limit, latency per item this much above the best seen there probes one fewer."""
MAX_PROBE_WAIT = 16
"""Most measurements at the settled limit between two probes upward."""
DECISIONS_KEPT = 64


@dataclass(frozen=True, slots=True)
class Stamp:
    """When a chunk went out: its sequence number, the window's clock and how many times the
    window had been halved (a trouble that already halved the window is not counted twice)."""

    sequence: int
    sent_at: float
    halvings: int
    in_flight_area: float
    """The window's integral of chunks in flight over time when it went out."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One change of the limit, for logs, benchmarks and tests."""

    at: float
    limit: int
    reason: str
    throughput: float | None = None
    """Items per second measured at the previous limit (None for a halving)."""


@dataclass(slots=True)
class _Measure:
    """Answers at one limit: throughput by Little's law (in flight / latency, per item)."""

    limit: int
    count: int = 0
    items: int = 0
    latency_s: float = 0.0
    in_flight: float = 0.0
    """Sum over the answers of the mean number of chunks in flight (itself included) during
    each one's flight."""

    def add(self, items: int, latency_s: float, in_flight: float) -> None:
        self.count += 1
        self.items += items
        self.latency_s += latency_s
        self.in_flight += in_flight

    @property
    def throughput(self) -> float:
        """Items per second: mean chunks in flight times items per second of one chunk."""
        return (self.in_flight / self.count) * self.items / max(self.latency_s, 1e-9)

    @property
    def latency_per_item(self) -> float:
        return self.latency_s / max(1, self.items)

    @property
    def full(self) -> bool:
        """The window was full: the bot kept `limit` chunks in flight, so more could help (with
        fewer the bot, not the site, set the pace)."""
        return self.in_flight / self.count >= self.limit - 0.5


class AdaptiveWindow:
    """How many chunks may be in flight: between 1 and `maximum`, found by measuring throughput
    (see the module docstring). `limit` is what `acquire` enforces now, `settled` the limit the
    last comparison chose (the limit is one more or one fewer while a probe measures)."""

    def __init__(self, maximum: int, clock: Callable[[], float] = time.monotonic) -> None:
        if maximum < 1:
            raise ValueError("the window's maximum must be at least 1")
        self.maximum = maximum
        self.clock = clock
        self.limit = 1
        self.settled = 1
        self.in_flight = 0
        self.peak_in_flight = 0
        self.halvings = 0
        self.decisions: deque[Decision] = deque(maxlen=DECISIONS_KEPT)
        self._freed = asyncio.Event()
        self._sent = 0
        self._changed_at = 1
        """The first sequence number sent at the current limit."""
        self._counted_from: int | None = 1
        """Answers of chunks from this sequence number on measure the limit (None: warming up)."""
        self._measure = _Measure(1)
        self._throughput: dict[int, float] = {}
        """The last throughput measured at each limit since the last halving."""
        self._best_latency: float | None = None
        self._wait = 0
        """Measurements left at the settled limit before the next probe upward."""
        self._backoff = 0
        self._time_at: dict[int, float] = {}
        self._limit_since = clock()
        self._area = 0.0
        """Integral over time of `in_flight` (chunk-seconds), for each chunk's mean concurrency."""
        self._area_at = self._limit_since

    # -- the gate -------------------------------------------------------------------------------

    async def acquire(self) -> None:
        while self.in_flight >= self.limit:
            self._freed.clear()
            await self._freed.wait()
        self._account()
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def release(self) -> None:
        self._account()
        self.in_flight -= 1
        self._freed.set()

    def _account(self) -> float:
        """Bring the in-flight integral up to now (before `in_flight` changes); returns it."""
        now = self.clock()
        self._area += self.in_flight * max(0.0, now - self._area_at)
        self._area_at = now
        return self._area

    # -- what the sender tells it -------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def sent(self) -> Stamp:
        """A chunk goes out now; hand the stamp back to `record` with its answer."""
        self._sent += 1
        return Stamp(self._sent, self.clock(), self.halvings, self._account())

    def record(self, stamp: Stamp, items: int, *, healthy: bool) -> float:
        """The chunk sent at `stamp` was answered (`healthy`: without retries or failures);
        returns its latency. Call before `release`, so the chunk still counts as in flight."""
        area = self._account()
        latency = self.clock() - stamp.sent_at
        if not healthy:
            if stamp.halvings == self.halvings:
                self.congested()  # not yet halved for this trouble (retries halve as they come)
            return latency
        if self._counted_from is None:
            if stamp.sequence >= self._changed_at:
                self._counted_from = self._sent + 1  # the pipeline now holds the new limit's
            return latency
        if stamp.sequence < self._counted_from:
            return latency
        concurrency = (area - stamp.in_flight_area) / latency if latency > 0 else self.in_flight
        self._measure.add(items, latency, concurrency)
        if self._measure.count >= max(SAMPLES, 2 * self._measure.limit):
            self._decide(self._measure)
        return latency

    def congested(self) -> None:
        """A retry or a failure: halve the limit and forget what was measured."""
        self.halvings += 1
        self._throughput.clear()
        self._best_latency = None
        self._backoff = max(1, self._backoff)
        self._wait = self._backoff
        self.settled = max(1, self.limit // 2)
        self._change(self.settled, "retry or failure", None)

    def time_at_limits(self) -> dict[int, float]:
        """Seconds spent at each limit so far."""
        spent = dict(self._time_at)
        spent[self.limit] = spent.get(self.limit, 0.0) + self.clock() - self._limit_since
        return spent

    # -- deciding -----------------------------------------------------------------------------

    def _decide(self, measure: _Measure) -> None:
        limit, throughput = measure.limit, measure.throughput
        self._throughput[limit] = throughput
        if limit > self.settled:
            self._after_probe_up(measure)
        elif limit < self.settled:
            self._after_probe_down(measure)
        else:
            self._at_settled(measure)

    def _after_probe_up(self, measure: _Measure) -> None:
        below = self.settled
        if measure.throughput >= self._throughput[below] * (1 + GAIN_SHARE / below):
            self.settled, self._backoff, self._wait = measure.limit, 0, 0
            self._best_latency = measure.latency_per_item
            grow = measure.full and measure.limit < self.maximum
            self._change(measure.limit + grow, "more in flight raised throughput", measure)
        else:
            self._backoff = min(MAX_PROBE_WAIT, max(1, 2 * self._backoff))
            self._wait = self._backoff
            self._change(below, "latency rose without throughput gain", measure)

    def _after_probe_down(self, measure: _Measure) -> None:
        above = self.settled
        limit = measure.limit
        if self._throughput[above] < measure.throughput * (1 + GAIN_SHARE / limit):
            self.settled = limit
            self._best_latency = measure.latency_per_item
            self._backoff = max(1, self._backoff)
            self._wait = self._backoff
            # and one fewer again: the site may have lost more than one request's room
            self._change(max(1, limit - 1), "one fewer in flight kept the throughput", measure)
        else:
            self._best_latency = None  # the site is slower now, but the extra one still pays
            self._change(above, "one fewer in flight lowered throughput", measure)

    def _at_settled(self, measure: _Measure) -> None:
        limit, latency = measure.limit, measure.latency_per_item
        best = self._best_latency
        if best is not None and latency > best * (1 + LATENCY_RISE) and limit > 1:
            self._change(limit - 1, "latency rose", measure)
            return
        self._best_latency = latency if best is None else min(best, latency)
        if self._wait > 0:
            self._wait -= 1
        elif measure.full and limit < self.maximum:
            self._change(limit + 1, "probe", measure)
            return
        self._change(limit, "", measure)

    def _change(self, limit: int, reason: str, measure: _Measure | None) -> None:
        """Measure `limit` from now on; a new limit first lets the pipeline settle."""
        now = self.clock()
        self._measure = _Measure(limit)
        if limit == self.limit and measure is not None:
            return  # the same limit: its later answers measure it as well
        self._time_at[self.limit] = self._time_at.get(self.limit, 0.0) + now - self._limit_since
        self._limit_since = now
        self.decisions.append(
            Decision(now, limit, reason, None if measure is None else measure.throughput)
        )
        raised = limit > self.limit
        self.limit = limit
        self._changed_at = self._sent + 1
        self._counted_from = None
        if raised:
            self._freed.set()
