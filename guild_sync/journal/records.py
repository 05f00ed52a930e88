"""The journal's records and their JSON form.

Everything stored is JSON text so the two backends share one validator: a row or key that a
crash, a manual edit or an older version left half-written is caught by `from_json`, reported
as a `CorruptRecord` and set aside, instead of raising into the sync cog at every start-up.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
INTERRUPTED: Final = "interrupted"
STATUSES: Final = frozenset({RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED})
FINAL_STATUSES: Final = STATUSES - {RUNNING}

TRIGGERS: Final = frozenset({"startup", "event", "command", "reconnect", "reconcile"})
"""`reconnect`: the syncs after a fresh READY (a gateway reconnect that could not resume).
`reconcile`: the background syncs every SYNC_RECONCILE_INTERVAL hours (exts/sync/reconcile.py)."""
MANUAL_TRIGGER: Final = "command"

# `detail` is for a few counters or ids shown in `!sync status`, not for payloads.
MAX_DETAIL_CHARS: Final = 4_000
MAX_ERROR_CHARS: Final = 2_000


class RecordError(ValueError):
    """Stored data that does not have the shape of a journal record."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def process_owner() -> str:
    """A name for this process's lifetime: host, pid and a random part, so a restarted process
    (same host, maybe the same pid in a container) never passes for its dead predecessor.
    Use it as the `owner` of runs and locks; `mark_interrupted` relies on that."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def new_run_id() -> str:
    """Hex milliseconds since the epoch plus randomness: unique, and sorts by start time."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(4)}"


def _get(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key)
    if isinstance(value, bool) and kind is not bool:
        raise RecordError(f"field {key!r} should be {kind}, got {value!r:.80}")
    if not isinstance(value, kind):
        raise RecordError(f"field {key!r} should be {kind}, got {value!r:.80}")
    return value


def _count(data: dict[str, Any], key: str) -> int:
    value = _get(data, key, int)
    if value < 0:
        raise RecordError(f"field {key!r} should not be negative, got {value}")
    return value


def _time(data: dict[str, Any], key: str, *, optional: bool = False) -> datetime | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise RecordError(f"field {key!r} should be an ISO time, got {value!r:.80}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise RecordError(f"field {key!r} is not an ISO time: {value!r:.80}") from error
    if parsed.tzinfo is None:
        raise RecordError(f"field {key!r} has no time zone: {value!r:.80}")
    return parsed.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def parse_json_object(raw: str | bytes | None) -> dict[str, Any]:
    if raw is None:
        raise RecordError("the record is empty")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise RecordError(f"not JSON: {error}") from error
    if not isinstance(data, dict):
        raise RecordError(f"should be a JSON object, got {type(data).__name__}")
    return data


def clip_error(error: str | None) -> str | None:
    """Keep a traceback-sized error from bloating every status message and stored row."""
    if error is None or len(error) <= MAX_ERROR_CHARS:
        return error
    return error[: MAX_ERROR_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True)
class Run:
    """One sync run as moderators see it in `!sync status` and the log channel.

    `owner` names the process running it and `heartbeat_at` is refreshed by every update, so
    a later start-up can tell a run whose process died ("interrupted") from one that is alive.
    """

    run_id: str
    kind: str
    trigger: str
    actor: str | None
    automatic: bool
    started_at: datetime
    owner: str | None = None
    heartbeat_at: datetime | None = None
    finished_at: datetime | None = None
    planned: int = 0
    done: int = 0
    failed: int = 0
    status: str = RUNNING
    last_error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def begin(
        cls,
        kind: str,
        trigger: str,
        *,
        actor: str | None = None,
        owner: str | None = None,
        planned: int = 0,
        detail: dict[str, Any] | None = None,
    ) -> Run:
        """A new running run; startup and event triggers are automatic, commands are not."""
        now = utcnow()
        return cls(
            run_id=new_run_id(),
            kind=kind,
            trigger=trigger,
            actor=actor,
            automatic=trigger != MANUAL_TRIGGER,
            started_at=now,
            owner=owner,
            heartbeat_at=now,
            planned=planned,
            detail=dict(detail or {}),
        )

    @property
    def is_running(self) -> bool:
        return self.status == RUNNING

    def with_progress(
        self,
        *,
        done: int | None = None,
        failed: int | None = None,
        planned: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Run:
        return replace(
            self,
            heartbeat_at=utcnow(),
            done=self.done if done is None else done,
            failed=self.failed if failed is None else failed,
            planned=self.planned if planned is None else planned,
            detail=self.detail if detail is None else dict(detail),
        )

    def finished(self, status: str, *, last_error: str | None = None) -> Run:
        if status not in FINAL_STATUSES:
            raise ValueError(f"a run finishes as one of {sorted(FINAL_STATUSES)}, not {status!r}")
        now = utcnow()
        return replace(
            self,
            status=status,
            finished_at=now,
            heartbeat_at=now,
            last_error=clip_error(last_error) if last_error is not None else self.last_error,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "trigger": self.trigger,
            "actor": self.actor,
            "automatic": self.automatic,
            "started_at": _iso(self.started_at),
            "owner": self.owner,
            "heartbeat_at": _iso(self.heartbeat_at),
            "finished_at": _iso(self.finished_at),
            "planned": self.planned,
            "done": self.done,
            "failed": self.failed,
            "status": self.status,
            "last_error": self.last_error,
            "detail": self.detail,
        }

    def dumps(self) -> str:
        """The stored text; refuses a record that `loads` would later reject as corrupt."""
        text = json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False)
        Run.loads(text)
        if len(json.dumps(self.detail)) > MAX_DETAIL_CHARS:
            raise ValueError(f"run detail is over {MAX_DETAIL_CHARS} characters of JSON")
        return text

    @classmethod
    def loads(cls, raw: str | bytes | None) -> Run:
        return cls.from_json(parse_json_object(raw))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        run_id = _get(data, "run_id", str)
        kind = _get(data, "kind", str)
        if not run_id or not kind:
            raise RecordError("run_id and kind must not be empty")
        trigger = _get(data, "trigger", str)
        if trigger not in TRIGGERS:
            raise RecordError(f"unknown trigger {trigger!r:.40}")
        status = _get(data, "status", str)
        if status not in STATUSES:
            raise RecordError(f"unknown status {status!r:.40}")
        started_at = _time(data, "started_at")
        assert started_at is not None
        return cls(
            run_id=run_id,
            kind=kind,
            trigger=trigger,
            actor=_get(data, "actor", (str, type(None))),
            automatic=_get(data, "automatic", bool),
            started_at=started_at,
            owner=_get(data, "owner", (str, type(None))),
            heartbeat_at=_time(data, "heartbeat_at", optional=True),
            finished_at=_time(data, "finished_at", optional=True),
            planned=_count(data, "planned"),
            done=_count(data, "done"),
            failed=_count(data, "failed"),
            status=status,
            last_error=_get(data, "last_error", (str, type(None))),
            detail=_get(data, "detail", dict),
        )


@dataclass(frozen=True, slots=True)
class BreakerState:
    """The persisted count behind the circuit breaker of one kind of run.

    `last_run_id` makes recording the same run twice (a retried call, a restart that replays
    its last result) a no-op instead of a second failure.
    """

    kind: str
    consecutive_failures: int = 0
    opened_at: datetime | None = None
    last_error: str | None = None
    last_run_id: str | None = None

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def dumps(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "consecutive_failures": self.consecutive_failures,
                "opened_at": _iso(self.opened_at),
                "last_error": self.last_error,
                "last_run_id": self.last_run_id,
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, raw: str | bytes | None, *, kind: str) -> BreakerState:
        data = parse_json_object(raw)
        if data.get("kind") != kind:
            raise RecordError(f"breaker record of kind {data.get('kind')!r:.40} stored as {kind!r}")
        return cls(
            kind=kind,
            consecutive_failures=_count(data, "consecutive_failures"),
            opened_at=_time(data, "opened_at", optional=True),
            last_error=_get(data, "last_error", (str, type(None))),
            last_run_id=_get(data, "last_run_id", (str, type(None))),
        )


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a single-flight lock and since when, for "a run is already in progress"."""

    name: str
    owner: str
    acquired_at: datetime
    expires_in: float
    token: str = field(default="", repr=False)

    def dumps(self) -> str:
        return json.dumps(
            {"owner": self.owner, "acquired_at": _iso(self.acquired_at), "token": self.token},
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, raw: str | bytes | None, *, name: str, expires_in: float) -> LockHolder:
        data = parse_json_object(raw)
        acquired_at = _time(data, "acquired_at")
        assert acquired_at is not None
        return cls(
            name=name,
            owner=_get(data, "owner", str),
            acquired_at=acquired_at,
            expires_in=expires_in,
            token=_get(data, "token", str),
        )


@dataclass(frozen=True, slots=True)
class CorruptRecord:
    """A stored record that could not be read and was moved to quarantine.

    The caller posts these to the log channel; `where` names the row or key so an operator can
    find the quarantined copy.
    """

    where: str
    reason: str
    raw_excerpt: str
    found_at: datetime = field(default_factory=utcnow)

    def describe(self) -> str:
        return f"corrupt journal record {self.where} set aside: {self.reason}"
