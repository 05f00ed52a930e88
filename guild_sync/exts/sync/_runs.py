"""The runs of one guild: one at a time per kind, guarded, journalled and told in the log.

A run is what moderators see as one story in the log channel: a role sync, a user sync or a
role deletion, started by a command, an event or the start-up. This is where the breaker, the
destructive-diff guard, the lease, the live reporter and the engine meet; the cog only decides
when a run is wanted.

A run whose lease is lost (renewals failed until it may expire, or another process holds it)
stops at once through the engine's cancel path: nothing new is sent, the requests already in
flight are answered. Another process may take the lease over once it expires, and two runs of
one sync must never write at the same time. The run ends "interrupted", with the reason in the
log channel, in its live message and in the journal (written late if the journal was the part
that went away), and counts for the breaker as an interrupted run does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import discord
from discord.ext import commands

from guild_sync.config import Settings
from guild_sync.engine import Plan, SyncEngine
from guild_sync.engine.progress import RunFinished
from guild_sync.exts.sync._bookkeeping import Refusal, RunBook, Ticket, journal_status
from guild_sync.exts.sync._guard import Guard
from guild_sync.exts.sync._messages import literal
from guild_sync.exts.sync._metrics import NullSink, SyncMetrics
from guild_sync.exts.sync._reporter import NO_PINGS, RunReporter
from guild_sync.exts.sync._slash import answer_end, command_prefix
from guild_sync.exts.sync._tracing import RunTrace, sentry_on, track_error
from guild_sync.journal import SUCCEEDED, BreakerChange

log = logging.getLogger(__name__)

STARTUP, EVENT, COMMAND = "startup", "event", "command"
TRIGGER_LABELS = {STARTUP: "start-up", EVENT: "event", COMMAND: "command"}
KINDS = ("roles", "users", "role-delete")
TITLES = {"roles": "Role sync", "users": "User sync", "role-delete": "Role deletion"}
LOCK_OF_KIND = {"roles": "roles", "role-delete": "roles", "users": "users"}
HEARTBEAT_S = 1.0
STARTING_WAIT_S = 3.0
"""How long a command waits for a starting run's message before answering without its link."""
HISTORY = 10

Post = Callable[..., Awaitable[discord.Message | None]]


@dataclass(frozen=True)
class RunRequest:
    """What was asked for: a run's kind and who or what asked, carried as one through the
    admission, the run and its report."""

    kind: str
    trigger: str
    actor: discord.abc.User | None = None
    dry_run: bool = False
    role: discord.Role | None = None
    ctx: commands.Context | None = None
    detail: dict[str, str] | None = None

    @property
    def automatic(self) -> bool:
        return self.trigger != COMMAND


@dataclass
class ActiveRun:
    run_id: str
    kind: str
    trigger: str
    actor: str | None
    reporter: RunReporter
    task: asyncio.Task[RunFinished]
    started: float = field(default_factory=time.monotonic)


class Runs:
    def __init__(
        self,
        *,
        settings: Settings,
        engine: SyncEngine,
        book: RunBook,
        channel: Callable[[], discord.abc.Messageable | None],
        post: Post,
        metrics: SyncMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or SyncMetrics(NullSink())
        self.engine = engine
        self.book = book
        self.channel = channel
        self.post = post
        self.guard = Guard(settings=settings, engine=engine, post=post)
        self.active: dict[str, ActiveRun] = {}
        self.history: deque[RunFinished] = deque(maxlen=HISTORY)
        self._locks = {name: asyncio.Lock() for name in set(LOCK_OF_KIND.values())}
        self._asked = dict.fromkeys(self._locks, 0)
        """Per lock: runs asked for and not yet returned (waiting for the lock, a moderator's
        answer or another process's lease, running, or posting their summary)."""
        book.on_late_change = self.announce_breaker
        book.watch_breakers(KINDS, self.metrics.breaker)

    def lock_of(self, kind: str) -> asyncio.Lock:
        return self._locks[LOCK_OF_KIND[kind]]

    def busy(self, kind: str) -> bool:
        """Whether a run sharing this kind's lock is running or waiting to (see `_asked`)."""
        return self._asked[LOCK_OF_KIND[kind]] > 0

    def running(self, kind: str) -> ActiveRun | None:
        lock_name = LOCK_OF_KIND[kind]
        return next((r for r in self.active.values() if LOCK_OF_KIND[r.kind] == lock_name), None)

    async def running_or_starting(self, kind: str) -> ActiveRun | None:
        """The run of this kind, waiting briefly for one that holds the lock but has not posted
        its message yet (a command sent twice in a row must not queue a second run)."""
        lock = self.lock_of(kind)
        deadline = time.monotonic() + STARTING_WAIT_S
        # Polled: neither registering a run nor releasing the lock signals an event.
        while self.running(kind) is None and lock.locked() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return self.running(kind)

    async def run(
        self,
        kind: str,
        *,
        trigger: str,
        actor: discord.abc.User | None = None,
        dry_run: bool = False,
        role: discord.Role | None = None,
        ctx: commands.Context | None = None,
        detail: dict[str, str] | None = None,
    ) -> RunFinished | None:
        """One sync run, journalled and reported in the log channel; None if it did not start.

        Automatic runs ask the breaker and the destructive-diff guard first, and wait for a run
        of the same kind (here or, until its lease expires, in a dead process). A command is
        refused while one runs (the caller checks `running` first)."""
        lock_name = LOCK_OF_KIND[kind]
        self._asked[lock_name] += 1
        try:
            return await self._run(RunRequest(kind, trigger, actor, dry_run, role, ctx, detail))
        finally:
            self._asked[lock_name] -= 1

    async def _run(self, request: RunRequest) -> RunFinished | None:
        assert self.engine is not None
        kind, ctx = request.kind, request.ctx
        async with self._locks[LOCK_OF_KIND[kind]]:
            started = await self._begin(request)
            if started is None:
                self.metrics.run_refused(kind)
                return None
            ticket, reporter = started
            plan = self.guard.take_plan(kind)
            began = time.monotonic()
            report = await self._execute(request, ticket, reporter, plan)
            status = journal_status(report.status, reporter.chunks_failed, report.error)
            self.metrics.run_ended(
                report, succeeded=status == SUCCEEDED, duration_s=time.monotonic() - began
            )
            # Journal first: a process stopped right after the summary shows still counts it.
            change = await self.book.finish(
                ticket,
                status,
                error=report.error or reporter.last_error,
                done=reporter.meter.done,
                failed=report.failed,
                planned=reporter.meter.planned or 0,
            )
        # Outside the lock: the next run of this kind need not wait for this summary's edit.
        await reporter.close(report)
        if ctx is not None and ctx.interaction is not None and reporter.final_text is not None:
            await answer_end(ctx.interaction, reporter.final_text, reporter.jump_url)
        if change is not None:
            await self.announce_breaker(change)
        await self.post_notices()
        self.history.appendleft(report)
        return report

    async def _begin(self, request: RunRequest) -> tuple[Ticket, RunReporter] | None:
        """Breaker, guard and lease say yes: the run is journalled and its live message posted."""
        kind, trigger, actor, ctx = request.kind, request.trigger, request.actor, request.ctx
        automatic = request.automatic
        if not request.dry_run:
            refusal = await self.book.admit(kind, automatic=automatic)
            if refusal is not None:
                log.warning("automatic %s run not started: %s", kind, refusal.reason)
                return None
            if automatic and not await self.guard.allows(kind, TITLES[kind]):
                return None
        ticket = await self.book.begin(
            kind,
            LOCK_OF_KIND[kind],
            trigger=trigger,
            actor=f"{actor} ({actor.id})" if actor is not None else None,
            detail=request.detail,
            wait_for_lock=self.book.lease_ttl + 5 if automatic else 0.0,
        )
        if isinstance(ticket, Refusal):
            if ctx is not None:
                await ctx.reply(f"Not started: {ticket.reason}.", allowed_mentions=NO_PINGS)
            else:
                await self.post(f"⚠️ {TITLES[kind]} ({trigger}) not started: {ticket.reason}.")
            return None
        reporter = RunReporter(
            self.channel() or NullChannel(),
            title=TITLES[kind],
            headline=self._headline(request),
            run_id=ticket.run.run_id,
            min_edit_interval=self.settings.progress_interval,
            track_error=track_error,
            prefix=command_prefix(self.settings),
        )
        message = await reporter.open()
        if message is not None:
            await self.book.note_message(ticket, message.id)
        if ctx is not None:
            try:
                where = (
                    f"follow it here: {reporter.jump_url}"
                    if reporter.jump_url is not None
                    else "the log channel refused its live message, so the bot's logs follow it"
                )
                await ctx.reply(f"Started; {where}", allowed_mentions=NO_PINGS)
            except discord.HTTPException as error:  # the lease is held: the run must go on
                log.warning("could not answer the command of run %s: %s", ticket.run.run_id, error)
        return ticket, reporter

    async def _execute(
        self, request: RunRequest, ticket: Ticket, reporter: RunReporter, plan: Plan | None
    ) -> RunFinished:
        """The engine's run, followed live; a crash, a cancel or a lost lease still ends in a
        report. `plan`: the guard's recorded pass, which the run sends instead of reading the
        site again."""
        assert self.engine is not None
        kind, trigger, actor = request.kind, request.trigger, request.actor
        run_id = ticket.run.run_id
        unsubscribe = [self.engine.subscribe(reporter.feed)]
        if sentry_on():
            unsubscribe.append(self.engine.subscribe(RunTrace(run_id, kind, trigger).feed))
        task = asyncio.create_task(self._engine_run(request, run_id, plan))
        actor_name = str(actor) if actor is not None else None
        self.active[run_id] = ActiveRun(run_id, kind, trigger, actor_name, reporter, task)
        heartbeat = asyncio.create_task(self._heartbeat(ticket, reporter))
        lease = ticket.lease
        lost = asyncio.ensure_future(lease.wait_lost()) if lease is not None else None
        interrupted: str | None = None
        try:
            # Unlike awaiting the task, asyncio.wait leaves it running if this is cancelled:
            # both ways of stopping go through task.cancel(), then wait for what is in flight.
            waiting = {task} if lost is None else {task, lost}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                report = task.result()
            else:
                assert lease is not None
                interrupted = self._lease_lost(kind, lease.lost_reason)
                task.cancel()  # first: the engine stops sending before anyone is told
                log.warning("sync run %s stopped: %s", run_id, interrupted)
                await reporter.error(
                    f"stopped: {literal(interrupted)}. The requests already sent are being "
                    "answered and nothing new is sent; the next sync writes what still differs."
                )
                report = await _finished_or_cancelled(task, run_id, kind, trigger)
        except asyncio.CancelledError:
            task.cancel()
            report = await _finished_or_cancelled(task, run_id, kind, trigger)
        except Exception as error:  # a bug or an unreadable site: report, never crash
            log.exception("sync run %s failed", run_id)
            report = RunFinished(run_id, kind, trigger, "failed", error=_describe(error))
        finally:
            del self.active[run_id]
            heartbeat.cancel()
            if lost is not None:
                lost.cancel()
        await self.engine.hub.idle()
        for stop in unsubscribe:
            stop()
        if interrupted is not None and report.status == "cancelled":
            # What was written before the stop (the engine's own report), ended interrupted.
            written = reporter.engine_report or report
            report = dataclasses.replace(written, status="interrupted", error=interrupted)
        return report

    @staticmethod
    def _lease_lost(kind: str, reason: str | None) -> str:
        return (
            f"this bot process lost its lease on {LOCK_OF_KIND[kind]} runs "
            f"({reason or 'unknown reason'}), so another bot process may run this sync now"
        )

    @staticmethod
    def _headline(request: RunRequest) -> str:
        kind, role, actor, detail = request.kind, request.role, request.actor, request.detail
        what = {
            "roles": "roles",
            "users": "users",
            "role-delete": f"role {literal(role.name) if role else '?'} deleted on Discord",
        }[kind]
        who = f" by {literal(actor.display_name)}" if actor is not None else ""
        resumes = f" · resumes interrupted run `{detail['resumes']}`" if detail else ""
        shown_trigger = TRIGGER_LABELS.get(request.trigger, request.trigger)
        return f"{'dry run of ' if request.dry_run else ''}{what} · {shown_trigger}{who}{resumes}"

    async def _heartbeat(self, ticket: Ticket, reporter: RunReporter) -> None:
        """Keep the journal's row fresh, so a restart can tell a dead run from a live one."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            await self.book.heartbeat(
                ticket,
                done=reporter.meter.done,
                failed=reporter.chunks_failed,
                planned=reporter.meter.planned or 0,
            )

    async def announce_breaker(self, change: BreakerChange) -> None:
        p = command_prefix(self.settings)
        if change.opened:
            await self.post(
                f"🛑 **Automatic syncs paused**: {literal(change.describe())}.\n"
                f"Check the error above and the site, then run `{p}sync users` (or `{p}sync "
                f"roles`) as a moderator; when it succeeds, automatic runs resume. "
                f"`{p}sync status` shows the breaker."
            )
        else:
            await self.post(f"✅ {literal(change.describe())}.")

    async def post_notices(self) -> None:
        for notice in self.book.notices():
            await self.post(f"⚠️ Run journal: {literal(notice)} (set aside; syncing goes on).")

    async def _engine_run(self, request: RunRequest, run_id: str, plan: Plan | None) -> RunFinished:
        assert self.engine is not None
        kind, trigger, dry_run, role = request.kind, request.trigger, request.dry_run, request.role
        if kind == "roles":
            return await self.engine.sync_roles(dry_run=dry_run, run_id=run_id, trigger=trigger)
        if kind == "users":
            return await self.engine.sync_users(
                dry_run=dry_run, run_id=run_id, trigger=trigger, plan=plan
            )
        assert role is not None
        return await self.engine.delete_role(role.id, run_id=run_id, trigger=trigger)


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


async def _finished_or_cancelled(
    task: asyncio.Task[RunFinished], run_id: str, kind: str, trigger: str
) -> RunFinished:
    try:
        return await task
    except asyncio.CancelledError:
        return RunFinished(run_id, kind, trigger, "cancelled")


class NullChannel:
    """Stands in for a missing log channel so a run still happens (and is logged)."""

    async def send(self, content: str, **_: Any) -> None:
        log.warning("no log channel: %s", content)
        return None
