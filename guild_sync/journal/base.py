"""The journal's interface, and the logic both backends share.

A `Journal` is an abstract base class rather than a `typing.Protocol` because the backends
share real behaviour (run state transitions, interruption rules, lease handling, corruption
notices) and only differ in a handful of atomic storage primitives. Each primitive is atomic
in its backend (a `BEGIN IMMEDIATE` transaction in SQLite, WATCH/MULTI or a Lua script in
Redis), so two processes sharing a store never lose each other's writes.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Self

from guild_sync.journal.lease import Lease
from guild_sync.journal.records import (
    FINAL_STATUSES,
    INTERRUPTED,
    BreakerState,
    CorruptRecord,
    LockHolder,
    Run,
    utcnow,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_RUNS = 200
MAX_PENDING_NOTICES = 50


class JournalUnavailable(ConnectionError):
    """The store cannot be reached or written; the caller decides whether a sync goes on."""


class LockBusy(Exception):
    """Raised by `Journal.lock` when another owner holds the lock."""

    def __init__(self, holder: LockHolder | None):
        self.holder = holder
        who = f"{holder.owner} since {holder.acquired_at:%Y-%m-%d %H:%M:%S} UTC" if holder else "?"
        super().__init__(f"lock is held by {who}")


class Journal(abc.ABC):
    """Run history, single-flight locks and breaker state for one bot deployment.

    Reads never raise on corrupt data: a bad record is logged, moved to quarantine and
    collected as a `CorruptRecord` that `take_notices` hands to the caller for the log channel.
    Store failures raise `JournalUnavailable`.
    """

    def __init__(self, *, namespace: str, max_runs: int = DEFAULT_MAX_RUNS):
        if max_runs < 1:
            raise ValueError("the journal must keep at least one run")
        self.namespace = namespace
        self.max_runs = max_runs
        self._notices: list[CorruptRecord] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- runs -------------------------------------------------------------------------------

    async def start_run(self, run: Run) -> Run:
        """Record a new run, dropping the oldest finished runs beyond `max_runs`."""
        await self._insert_run(run)
        return run

    async def update_run(
        self,
        run_id: str,
        *,
        done: int | None = None,
        failed: int | None = None,
        planned: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Run | None:
        """Store progress and refresh the heartbeat; None if the run is unknown or corrupt."""
        return await self._transform_run(
            run_id,
            lambda run: run.with_progress(done=done, failed=failed, planned=planned, detail=detail),
        )

    async def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        last_error: str | None = None,
        done: int | None = None,
        failed: int | None = None,
        planned: int | None = None,
    ) -> Run | None:
        """Close a run. A run already marked interrupted may still finish (its process was
        slow, not dead), but a run that finished once keeps its first result."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"a run finishes as one of {sorted(FINAL_STATUSES)}, not {status!r}")

        def finish(run: Run) -> Run | None:
            if not run.is_running and run.status != INTERRUPTED:
                log.warning("run %s already finished as %s, not %s", run_id, run.status, status)
                return None
            progressed = run.with_progress(done=done, failed=failed, planned=planned)
            return progressed.finished(status, last_error=last_error)

        return await self._transform_run(run_id, finish)

    async def get_run(self, run_id: str) -> Run | None:
        return await self._load_run(run_id)

    async def recent_runs(self, kind: str | None = None, limit: int = 10) -> list[Run]:
        """Newest first."""
        runs = await self._load_runs()
        return [run for run in runs if kind is None or run.kind == kind][:limit]

    async def running_runs(self) -> list[Run]:
        return [run for run in await self._load_runs() if run.is_running]

    async def mark_interrupted(self, *, current_owner: str, stale_after: float) -> list[Run]:
        """Turn runs whose process died into "interrupted" runs, and return them.

        A run is dead when another owner started it and its heartbeat (`update_run`) is older
        than `stale_after` seconds. A single bot process calls this at start-up with
        `stale_after=0`: whatever another owner left running can only be from a dead process.
        With several processes sharing Redis, use a few heartbeat intervals.
        """
        cutoff = utcnow() - timedelta(seconds=stale_after)
        # Whether the last (possibly retried) application of `interrupt` changed the run, so
        # a run another process marked first is not reported twice.
        marked_here: dict[str, bool] = {}

        def is_dead(run: Run) -> bool:
            heartbeat = run.heartbeat_at or run.started_at
            return run.is_running and run.owner != current_owner and heartbeat <= cutoff

        def interrupt(run: Run) -> Run | None:
            marked_here[run.run_id] = is_dead(run)
            if not marked_here[run.run_id]:
                return None
            heartbeat = run.heartbeat_at or run.started_at
            return run.finished(
                INTERRUPTED,
                last_error=f"process {run.owner or '?'} stopped without finishing the run "
                f"(last heartbeat {heartbeat:%Y-%m-%d %H:%M:%S} UTC)",
            )

        interrupted = []
        for candidate in await self.running_runs():
            if not is_dead(candidate):
                continue
            run = await self._transform_run(candidate.run_id, interrupt)
            if run is not None and marked_here.get(run.run_id):
                interrupted.append(run)
        return interrupted

    # -- locks ------------------------------------------------------------------------------

    async def acquire(self, name: str, *, owner: str, ttl: float = 30.0) -> Lease | None:
        """Take the lock `name` without waiting; None when someone holds it (see `holder`)."""
        lease, _ = await self._try_acquire(name, owner=owner, ttl=ttl)
        return lease

    @asynccontextmanager
    async def lock(self, name: str, *, owner: str, ttl: float = 30.0) -> AsyncIterator[Lease]:
        """`async with journal.lock(kind, owner=...) as lease:`; raises `LockBusy` if held."""
        lease, holder = await self._try_acquire(name, owner=owner, ttl=ttl)
        if lease is None:
            raise LockBusy(holder)
        async with lease:
            yield lease

    async def holder(self, name: str) -> LockHolder | None:
        return await self._read_lock(name)

    async def _try_acquire(
        self, name: str, *, owner: str, ttl: float
    ) -> tuple[Lease | None, LockHolder | None]:
        if ttl <= 0:
            raise ValueError("a lease needs a positive ttl")
        claim = LockHolder(
            name=name,
            owner=owner,
            acquired_at=utcnow(),
            expires_in=ttl,
            token=secrets.token_hex(16),
        )
        confirmed_at = asyncio.get_running_loop().time()
        holder = await self._claim_lock(claim, ttl)
        if holder is not None:
            return None, holder
        return Lease(self, claim, ttl, confirmed_at), None

    # -- breaker state ----------------------------------------------------------------------

    async def load_breaker(self, kind: str) -> BreakerState:
        return await self._load_breaker(kind)

    async def transform_breaker(
        self, kind: str, change: Callable[[BreakerState], BreakerState]
    ) -> tuple[BreakerState, BreakerState]:
        """Atomically replace the state by `change(state)`; returns (before, after).

        `change` must be pure: a backend may call it again if another process raced it.
        """
        return await self._transform_breaker(kind, change)

    # -- corruption notices -----------------------------------------------------------------

    def take_notices(self) -> list[CorruptRecord]:
        """The corrupt records found since the last call, for the log channel."""
        notices, self._notices = self._notices, []
        return notices

    def _report_corrupt(self, where: str, reason: str, raw: str | bytes | None) -> None:
        excerpt = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        notice = CorruptRecord(where=where, reason=reason, raw_excerpt=excerpt[:200])
        log.error("%s (raw: %r)", notice.describe(), notice.raw_excerpt)
        self._notices = [*self._notices, notice][-MAX_PENDING_NOTICES:]

    # -- backend primitives -----------------------------------------------------------------

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def _insert_run(self, run: Run) -> None: ...

    @abc.abstractmethod
    async def _transform_run(self, run_id: str, change: Callable[[Run], Run | None]) -> Run | None:
        """Atomically apply `change` (None = leave as is); returns the stored run or None."""

    @abc.abstractmethod
    async def _load_run(self, run_id: str) -> Run | None: ...

    @abc.abstractmethod
    async def _load_runs(self) -> list[Run]:
        """All kept runs, newest first (the journal is bounded, so this is small)."""

    @abc.abstractmethod
    async def _claim_lock(self, claim: LockHolder, ttl: float) -> LockHolder | None:
        """Store `claim` unless a live holder exists; returns that holder, or None if claimed."""

    @abc.abstractmethod
    async def _read_lock(self, name: str) -> LockHolder | None: ...

    @abc.abstractmethod
    async def extend_lock(self, name: str, token: str, ttl: float) -> bool: ...

    @abc.abstractmethod
    async def release_lock(self, name: str, token: str) -> bool: ...

    @abc.abstractmethod
    async def _load_breaker(self, kind: str) -> BreakerState: ...

    @abc.abstractmethod
    async def _transform_breaker(
        self, kind: str, change: Callable[[BreakerState], BreakerState]
    ) -> tuple[BreakerState, BreakerState]: ...
