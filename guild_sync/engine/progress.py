"""Structured progress events, their delivery to subscribers, and a rate/ETA helper.

Every event is a frozen dataclass carrying its run id, so a reporter (a live Discord message,
the run journal, a test) can follow several runs at once. Each subscriber gets its own bounded
queue drained by its own task: a slow subscriber (a rate-limited Discord edit) falls behind and
loses its oldest events, it never stalls the sync.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

SUBSCRIBER_BACKLOG = 10_000


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    run_id: str


@dataclass(frozen=True, slots=True)
class RunStarted(ProgressEvent):
    kind: str
    trigger: str
    planned: dict[str, int] | None = None
    """Totals per kind when known up front; None for a streamed diff (see PlanUpdated)."""


@dataclass(frozen=True, slots=True)
class PlanUpdated(ProgressEvent):
    """The totals discovered so far; they only grow while the diff streams the site's pages."""

    planned: dict[str, int]
    scanned: int
    final: bool = False
    by_field: dict[str, int] | None = None
    """Per field, the users whose writes so far include it (a leave counts as `in_guild`)."""
    site_total: int | None = None
    """How many users the site holds (its first page says), so the share read is known."""


@dataclass(frozen=True, slots=True)
class ChunkDone(ProgressEvent):
    ok: bool
    items: int
    latency_s: float
    in_flight: int


@dataclass(frozen=True, slots=True)
class Retrying(ProgressEvent):
    error: str
    attempt: int
    wait_s: float


@dataclass(frozen=True, slots=True)
class BadRecords(ProgressEvent):
    """Items the site rejected for their content; sending them again cannot succeed."""

    ids: tuple[int, ...]
    status: int
    message: str


@dataclass(frozen=True, slots=True)
class ChunkFailed(ProgressEvent):
    """Items that still failed after the client's retries; a later run retries them."""

    ids: tuple[int, ...]
    error: str


@dataclass(frozen=True, slots=True)
class LeaversWithheld(ProgressEvent):
    """Nobody was marked as left: a sample of the users the run would mark as left was looked
    up on Discord, and some are still members (the member cache is incomplete) or the lookup
    failed (`error`). The run's other writes go ahead (see guild_sync.engine.leavers)."""

    leaving: int
    sampled: int
    still_members: tuple[int, ...]
    error: str = ""


@dataclass(frozen=True, slots=True)
class RunFinished(ProgressEvent):
    """The end of a run; also what the engine's run methods return (see RunReport)."""

    kind: str
    trigger: str
    status: str
    """finished, partial (some items failed), failed (nothing could be written), or cancelled."""
    created: int = 0
    updated: int = 0
    left: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    deleted_roles: int = 0
    duration_s: float = 0.0
    rate: float = 0.0
    """Items written per second over the whole run."""
    error: str = ""
    dry_run: bool = False
    plan: Any = None
    leaves_withheld: int = 0
    """Users the run would have marked as left but did not (see LeaversWithheld)."""
    """For a dry run: the Plan (counts per kind and field, a sample of changes)."""

    @property
    def written(self) -> int:
        return self.created + self.updated + self.left


RunReport = RunFinished

_LOG_LEVELS: dict[type, int] = {
    RunStarted: logging.INFO,
    PlanUpdated: logging.DEBUG,
    ChunkDone: logging.DEBUG,
    Retrying: logging.WARNING,
    BadRecords: logging.WARNING,
    ChunkFailed: logging.ERROR,
    LeaversWithheld: logging.WARNING,
    RunFinished: logging.INFO,
}

Subscriber = Callable[[ProgressEvent], Awaitable[None] | None]

LOGGED_IDS = 5
LOGGED_TEXT = 300


def brief(event: ProgressEvent) -> str:
    """The event for a log line: a few of its ids and the start of its error, not 1,000 ids and
    a whole HTML page per chunk."""
    parts = []
    for name in event.__dataclass_fields__:
        value = getattr(event, name)
        if isinstance(value, tuple) and len(value) > LOGGED_IDS:
            shown = ", ".join(map(str, value[:LOGGED_IDS]))
            parts.append(f"{name}=({len(value)} ids: {shown}, …)")
            continue
        if isinstance(value, str) and len(value) > LOGGED_TEXT:
            value = value[:LOGGED_TEXT] + "…"
        elif value is None or value == "":
            continue
        parts.append(f"{name}={value!r}" if isinstance(value, str) else f"{name}={value}")
    return f"{type(event).__name__}({', '.join(parts)})"


class _Subscription:
    def __init__(self, callback: Subscriber) -> None:
        self.callback = callback
        self.backlog: deque[ProgressEvent] = deque(maxlen=SUBSCRIBER_BACKLOG)
        self.wakeup = asyncio.Event()
        self.caught_up = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.dropped = 0

    def offer(self, event: ProgressEvent) -> None:
        if len(self.backlog) == self.backlog.maxlen:
            self.dropped += 1
            if self.dropped == 1:
                log.warning("subscriber %r is too slow; dropping old events", self.callback)
        self.backlog.append(event)
        self.caught_up.clear()
        self.wakeup.set()
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            while self.backlog:
                event = self.backlog.popleft()
                try:
                    result = self.callback(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("progress subscriber %r failed on %r", self.callback, event)
            self.wakeup.clear()
            self.caught_up.set()
            await self.wakeup.wait()


class ProgressHub:
    """Fans events out to subscribers and to `logging`."""

    def __init__(self) -> None:
        self._subscriptions: list[_Subscription] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Deliver every later event to `callback` (sync or async); returns an unsubscribe."""
        subscription = _Subscription(callback)
        self._subscriptions.append(subscription)

        def unsubscribe() -> None:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
            if subscription.task is not None:
                subscription.task.cancel()

        return unsubscribe

    def publish(self, event: ProgressEvent) -> None:
        log.log(_LOG_LEVELS.get(type(event), logging.DEBUG), "%s", brief(event))
        for subscription in self._subscriptions:
            subscription.offer(event)

    async def idle(self) -> None:
        """Wait until every subscriber has handled every event published so far."""
        for subscription in list(self._subscriptions):
            if subscription.task is not None:
                await subscription.caught_up.wait()

    async def close(self) -> None:
        for subscription in self._subscriptions:
            if subscription.task is not None:
                subscription.task.cancel()
        self._subscriptions.clear()


@dataclass
class RateMeter:
    """Items per second over a sliding window of ChunkDone events, and the ETA it implies.

    Feed it every event of one run; it reads the planned totals from RunStarted/PlanUpdated.
    `done` counts the items the site took: every answered chunk's items, less the ones it
    rejected or that failed (a chunk with one bad item still wrote the others).

    While a streamed diff is still reading the site, `planned` is only the writes found so far;
    `projected` extrapolates them over the site's users not yet read, so the share and the ETA
    shown describe the whole run (a quarter into the scan, the holders found so far are about a
    quarter of them).
    """

    window_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    planned: int | None = None
    done: int = 0
    scanned: int = 0
    site_total: int | None = None
    final: bool = False
    _samples: deque[tuple[float, int]] = field(default_factory=deque)
    _unwritten: int = 0

    def feed(self, event: ProgressEvent) -> None:
        if isinstance(event, PlanUpdated):
            self.planned = sum(event.planned.values())
            self.scanned, self.final = event.scanned, event.final
            self.site_total = event.site_total or self.site_total
        elif isinstance(event, RunStarted) and event.planned is not None:
            self.planned = sum(event.planned.values())
            self.final = True
        elif isinstance(event, BadRecords | ChunkFailed):
            self._unwritten += len(event.ids)  # published before their chunk's ChunkDone
        elif isinstance(event, ChunkDone):
            now = self.clock()
            written = max(0, event.items - self._unwritten)
            self._unwritten = max(0, self._unwritten - event.items)
            self.done += written
            self._samples.append((now, written))
            while self._samples and now - self._samples[0][0] > self.window_s:
                self._samples.popleft()

    @property
    def rate(self) -> float:
        """Items per second over the window (0 until two chunks have completed)."""
        if len(self._samples) < 2:
            return 0.0
        span = self._samples[-1][0] - self._samples[0][0]
        items = sum(n for _, n in self._samples) - self._samples[0][1]
        return items / span if span > 0 else 0.0

    @property
    def projected(self) -> int | None:
        """The run's total writes: the plan once final, else the writes found so far scaled by
        the share of the site's users read; None before anything is known."""
        if self.planned is None:
            return None
        if self.final or not self.site_total or not self.scanned:
            return self.planned
        share_read = min(1.0, self.scanned / self.site_total)
        return max(self.planned, round(self.planned / share_read))

    @property
    def eta_s(self) -> float | None:
        """Seconds until the projected total is written at the current rate; None if unknown."""
        projected = self.projected
        if projected is None or self.rate <= 0:
            return None
        return max(0, projected - self.done) / self.rate
