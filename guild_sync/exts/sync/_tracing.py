"""Sentry for sync runs: one transaction per run, a span per chunk, the start-up cron check-in.

The engine knows nothing about Sentry; this reads its progress events. A chunk's span is
recorded when its ChunkDone arrives, back-dated by the chunk's latency, so the trace shows each
request where it happened without the engine carrying Sentry handles.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sentry_sdk
from sentry_sdk.crons import capture_checkin
from sentry_sdk.crons.consts import MonitorStatus

from guild_sync.engine.progress import ChunkDone, ProgressEvent, RunFinished

STARTUP_MONITOR = "guild-sync-startup"


def sentry_on() -> bool:
    return sentry_sdk.get_client().is_active()


class RunTrace:
    """A subscriber that turns one run's events into a Sentry transaction."""

    def __init__(self, run_id: str, kind: str, trigger: str) -> None:
        self.run_id = run_id
        self.transaction = sentry_sdk.start_transaction(op="sync.run", name=f"sync {kind}")
        self.transaction.set_tag("run_id", run_id)
        self.transaction.set_tag("trigger", trigger)
        self.transaction.set_tag("kind", kind)

    def feed(self, event: ProgressEvent) -> None:
        if event.run_id != self.run_id:
            return
        if isinstance(event, ChunkDone):
            end = datetime.now(UTC)
            span = self.transaction.start_child(
                op="sync.chunk",
                name=f"{event.items} users",
                start_timestamp=end - timedelta(seconds=event.latency_s),
            )
            span.set_tag("ok", event.ok)
            span.set_data("in_flight", event.in_flight)
            span.finish(end_timestamp=end)
        elif isinstance(event, RunFinished):
            self.transaction.set_tag("status", event.status)
            self.transaction.set_status("ok" if event.status == "finished" else "internal_error")
            self.transaction.finish()


class ErrorTracker(Protocol):
    """Records an error elsewhere (Sentry) and returns its event id, or None."""

    def __call__(
        self, message: str, tags: dict[str, str], fingerprint: list[str] | None = None
    ) -> str | None: ...


def track_error(
    message: str, tags: dict[str, str], fingerprint: list[str] | None = None
) -> str | None:
    """Send an error to Sentry with the run's tags; its event id goes into the log message.
    `fingerprint` groups events of one cause into one Sentry issue whatever their text."""
    if not sentry_on():
        return None
    with sentry_sdk.new_scope() as scope:
        for key, value in tags.items():
            scope.set_tag(key, value)
        if fingerprint is not None:
            scope.fingerprint = fingerprint
        return sentry_sdk.capture_message(message, level="error")


class StartupCheckIn:
    """Sentry Crons: a start-up sync that never reports back shows as missed."""

    def __init__(self) -> None:
        self.check_in_id: str | None = None

    def begin(self) -> None:
        if sentry_on():
            self.check_in_id = capture_checkin(STARTUP_MONITOR, status=MonitorStatus.IN_PROGRESS)

    def end(self, ok: bool, duration_s: float | None = None) -> None:
        if self.check_in_id is not None:
            status: Any = MonitorStatus.OK if ok else MonitorStatus.ERROR
            capture_checkin(STARTUP_MONITOR, self.check_in_id, status=status, duration=duration_s)
