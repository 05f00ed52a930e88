"""The cog's record keeping around each run: journal rows, single-flight leases, the breaker.

In the outage the bot retried the same failing sync after every restart for a day. Every run is
written to the journal with a heartbeat, so a run whose process died is found at the next start
("interrupted") and counts as a failure; after `threshold` failed automatic runs in a row the
breaker refuses automatic runs until a moderator's run succeeds. A lease per kind of run keeps
two processes from running the same sync at once; a dead process's lease simply expires.

When the journal cannot be opened, the bot still serves moderators' commands but pauses every
automatic run: without the journal nothing could stop a repeat storm.

A run's ending that cannot be written (the journal went away during the run, as when a Redis
outage cost the run its lease) is kept and written once the journal answers again, so the run
is recorded with its own ending and reason, and counted once by the breaker, instead of being
found "interrupted" with no reason at the next start.

Whatever the book learns of a kind's breaker (the start-up's recovery reads every watched kind,
an automatic run's admission, a recorded ending) goes to `watch_breakers`' hook: the metrics'
`guild_sync_breaker_open` gauge, which alerts read instead of inferring it from failure counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from guild_sync.journal import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    SUCCEEDED,
    Breaker,
    BreakerChange,
    Journal,
    JournalUnavailable,
    Lease,
    Run,
    open_journal,
    process_owner,
)

log = logging.getLogger(__name__)

LEASE_TTL_S = 15.0
"""How long a run's lease outlives its process; renewed every third of it. A run whose lease is
lost stops (see runs.py), so another process may take over at most this long after a crash."""
LOCK_RETRY_S = 1.0
RECORD_RETRY_S = 1.0
RECORD_RETRY_MAX_S = 30.0
"""How often an ending the journal could not take is tried again (doubling up to the max)."""


@dataclass(frozen=True)
class Refusal:
    """Why a run does not start; `busy` means another process holds its lock right now."""

    reason: str
    busy: bool = False


@dataclass
class Ticket:
    """A run admitted to start: its journal record and the lease that keeps it single."""

    run: Run
    lease: Lease | None


@dataclass
class _Ending:
    """A run's ending waiting for the journal; `stored` once the run row took it."""

    ticket: Ticket
    status: str
    error: str | None
    done: int
    failed: int
    planned: int
    stored: Run | None = None


def journal_status(engine_status: str, chunk_failures: int, error: str = "") -> str:
    """The engine's ending as the journal and breaker count it.

    A "partial" run whose only failures are records the site rejected (names too long, unknown
    roles) reached a healthy site: counting it as failed would open the breaker over bad data.
    So does a "failed" one with no error and no failed request: every write was rejected.
    """
    if engine_status == "finished":
        return SUCCEEDED
    if engine_status == "cancelled":
        return CANCELLED
    if engine_status == "interrupted":  # stopped by the cog, e.g. because its lease was lost
        return INTERRUPTED
    if engine_status in ("partial", "failed") and chunk_failures == 0 and not error:
        return SUCCEEDED
    return FAILED


class RunBook:
    def __init__(
        self,
        journal: Journal | None,
        *,
        threshold: int,
        unavailable: str | None = None,
        lease_ttl: float = LEASE_TTL_S,
    ) -> None:
        self.journal = journal
        self.breaker = Breaker(journal, threshold=threshold) if journal is not None else None
        self.unavailable = unavailable
        self.owner = process_owner()
        self.lease_ttl = lease_ttl
        self.on_late_change: Callable[[BreakerChange], Awaitable[None]] | None = None
        """Told of a breaker change that only a late-recorded ending made (see `finish`)."""
        self._breaker_kinds: tuple[str, ...] = ()
        self._on_breaker: Callable[[str, bool], None] = lambda kind, is_open: None
        self._unrecorded: dict[str, _Ending] = {}
        self._recorder: asyncio.Task[None] | None = None
        self._all_recorded = asyncio.Event()
        self._all_recorded.set()

    @classmethod
    async def open(cls, url: str, *, threshold: int, lease_ttl: float = LEASE_TTL_S) -> RunBook:
        try:
            journal = await open_journal(url)
        except (JournalUnavailable, ValueError, OSError) as error:
            log.error("run journal unavailable: %s", error)
            return cls(None, threshold=threshold, unavailable=str(error), lease_ttl=lease_ttl)
        return cls(journal, threshold=threshold, lease_ttl=lease_ttl)

    async def close(self) -> None:
        if self._recorder is not None:
            self._recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recorder
        if self._unrecorded:
            log.warning(
                "closing with the end of runs %s unrecorded; the next start marks them interrupted",
                ", ".join(self._unrecorded),
            )
        if self.journal is not None:
            await self.journal.close()

    def watch_breakers(self, kinds: tuple[str, ...], hook: Callable[[str, bool], None]) -> None:
        """Tell `hook` whether each kind's breaker is open whenever the book learns it, and read
        `kinds` at the start-up's `recover`: a breaker left open before a restart is open from
        the first moment, not only once an automatic run is refused. Another process sharing
        the journal may change it meanwhile; the next read here catches up."""
        self._breaker_kinds, self._on_breaker = kinds, hook

    async def _count(self, run: Run) -> BreakerChange | None:
        """The breaker counts a finished run; the hook learns the kind's state after it."""
        assert self.breaker is not None
        state, change = await self.breaker.record(run)
        self._on_breaker(run.kind, state.is_open)
        return change

    def notices(self) -> list[str]:
        """Corrupt journal records found and set aside since the last call."""
        if self.journal is None:
            return []
        return [notice.describe() for notice in self.journal.take_notices()]

    async def recover(self) -> tuple[list[Run], list[BreakerChange]]:
        """At start-up: runs left running by a dead process become interrupted failures."""
        if self.journal is None or self.breaker is None:
            return [], []
        try:
            interrupted = await self.journal.mark_interrupted(
                current_owner=self.owner, stale_after=self.lease_ttl if self._shared else 0.0
            )
            changes = [await self._count(run) for run in interrupted]
        except JournalUnavailable as error:
            log.error("could not read the run journal at start-up: %s", error)
            return [], []
        try:
            for kind in self._breaker_kinds:
                self._on_breaker(kind, await self.breaker.is_open(kind))
        except JournalUnavailable as error:  # the next admission or ending reads it again
            log.warning("could not read the breakers at start-up: %s", error)
        return interrupted, [change for change in changes if change is not None]

    @property
    def _shared(self) -> bool:
        """Several bot processes may share a Redis journal; only SQLite is one process's own."""
        return type(self.journal).__name__ != "SqliteJournal"

    async def admit(self, kind: str, *, automatic: bool) -> Refusal | None:
        """Whether the breaker lets this run start (manual runs always may)."""
        if not automatic:
            return None
        if self.breaker is None:
            return Refusal(f"the run journal is unavailable ({self.unavailable})")
        try:
            decision = await self.breaker.allows(kind, automatic=True)
        except JournalUnavailable as error:
            return Refusal(f"the run journal is unavailable ({error})")
        self._on_breaker(kind, not decision.allowed)  # an automatic run is refused only by it
        return None if decision.allowed else Refusal(decision.reason)

    async def begin(
        self,
        kind: str,
        lock_name: str,
        *,
        trigger: str,
        actor: str | None,
        detail: dict[str, str] | None = None,
        wait_for_lock: float = 0.0,
    ) -> Ticket | Refusal:
        """Take the kind's lease (waiting up to `wait_for_lock`, e.g. for a dead process's
        lease to expire) and record the run as running."""
        run = Run.begin(kind, trigger, actor=actor, owner=self.owner, detail=detail)
        if self.journal is None:
            return Ticket(run, None)
        deadline = time.monotonic() + wait_for_lock
        try:
            while (
                lease := await self.journal.acquire(lock_name, owner=self.owner, ttl=self.lease_ttl)
            ) is None:
                if time.monotonic() >= deadline:
                    holder = await self.journal.holder(lock_name)
                    who = (
                        f"{holder.owner}, since {holder.acquired_at:%H:%M:%S} UTC"
                        if holder
                        else "?"
                    )
                    return Refusal(f"another bot process is running it ({who})", busy=True)
                await asyncio.sleep(LOCK_RETRY_S)
            await self.journal.start_run(run)
        except JournalUnavailable as error:
            log.error("run journal unavailable, running %s unrecorded: %s", run.run_id, error)
            return Ticket(run, None)
        return Ticket(run, lease)

    async def note_message(self, ticket: Ticket, message_id: int) -> None:
        """Remember the run's live message, so a later start can close it if this one dies."""
        if self.journal is None:
            return
        detail = {**ticket.run.detail, "message_id": str(message_id)}
        try:
            await self.journal.update_run(ticket.run.run_id, detail=detail)
        except JournalUnavailable as error:
            log.warning("could not record the message of %s: %s", ticket.run.run_id, error)

    async def heartbeat(self, ticket: Ticket, *, done: int, failed: int, planned: int) -> None:
        if self.journal is None:
            return
        try:
            await self.journal.update_run(
                ticket.run.run_id, done=done, failed=failed, planned=planned
            )
        except JournalUnavailable as error:
            log.warning("could not record progress of %s: %s", ticket.run.run_id, error)

    async def finish(
        self, ticket: Ticket, status: str, *, error: str | None, done: int, failed: int,
        planned: int,
    ) -> BreakerChange | None:  # fmt: skip
        """Record the ending, release the lease, and count the run for the breaker.

        An ending the journal cannot take now is kept and retried in the background until it
        can (`recorded` waits for that); its breaker change then goes to `on_late_change`."""
        if ticket.lease is not None:
            await ticket.lease.release()
        if self.journal is None or self.breaker is None:
            return None
        ending = _Ending(ticket, status, error, done, failed, planned)
        try:
            return await self._record(ending)
        except JournalUnavailable as error_:
            log.warning(
                "could not record the end of %s (%s) yet, retrying until the journal answers: %s",
                ticket.run.run_id, status, error_,
            )  # fmt: skip
            self._unrecorded[ticket.run.run_id] = ending
            self._all_recorded.clear()
            if self._recorder is None or self._recorder.done():
                self._recorder = asyncio.create_task(
                    self._record_later(), name="sync-journal-late-endings"
                )
            return None

    async def recorded(self) -> None:
        """Returns once every run's ending is in the journal (at once if none was kept)."""
        await self._all_recorded.wait()

    async def _record(self, ending: _Ending) -> BreakerChange | None:
        assert self.journal is not None and self.breaker is not None
        if ending.stored is None:
            stored = await self.journal.finish_run(
                ending.ticket.run.run_id, ending.status, last_error=ending.error,
                done=ending.done, failed=ending.failed, planned=ending.planned,
            )  # fmt: skip
            if stored is None:  # unknown, corrupt, or already finished: nothing to count
                return None
            ending.stored = stored
        return await self._count(ending.stored)

    async def _record_later(self) -> None:
        delay = RECORD_RETRY_S
        while self._unrecorded:
            await asyncio.sleep(delay)
            for run_id, ending in list(self._unrecorded.items()):
                try:
                    change = await self._record(ending)
                except JournalUnavailable as error:
                    log.warning("the end of %s is still unrecorded: %s", run_id, error)
                    delay = min(2 * delay, RECORD_RETRY_MAX_S)
                    break
                del self._unrecorded[run_id]
                log.info("recorded the end of %s (%s) late", run_id, ending.status)
                if change is not None and self.on_late_change is not None:
                    try:
                        await self.on_late_change(change)
                    except Exception as error:  # a log channel refusing must not stop this
                        log.warning("could not announce %s: %s", change.describe(), error)
        self._all_recorded.set()

    async def recent(self, limit: int = 5) -> list[Run]:
        if self.journal is None:
            return []
        try:
            return await self.journal.recent_runs(limit=limit)
        except JournalUnavailable:
            return []

    async def paused_kinds(self, kinds: tuple[str, ...]) -> list[str]:
        """The breaker's refusals, for `!sync status`."""
        refusals = [await self.admit(kind, automatic=True) for kind in kinds]
        return [refusal.reason for refusal in refusals if refusal is not None]
