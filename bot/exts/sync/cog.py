"""The Sync cog: Discord events and moderator commands in, engine runs out, the story in the log.

Everything that writes to the site goes through the engine: member events through its coalescing
queue, role events and commands as runs. Runs of one kind never overlap: a moderator asking
twice is told where to watch the run in progress, an automatic run waits its turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import discord
from discord.ext import commands

from bot.config import Settings
from bot.engine import SyncEngine
from bot.engine.progress import BadRecords, ChunkFailed, ProgressEvent, RunFinished
from bot.engine.roles import diff_roles
from bot.exts.sync.bookkeeping import LEASE_TTL_S, Refusal, RunBook, Ticket, journal_status
from bot.exts.sync.checks import is_moderator
from bot.exts.sync.discord_guild import DiscordGuildState, member_record, role_record
from bot.exts.sync.guard import GuardAnswer, GuardView, describe_plan, judge
from bot.exts.sync.messages import count, fit, literal, site_message
from bot.exts.sync.reporter import NO_PINGS, RunReporter, summary
from bot.exts.sync.sentry import init_sentry
from bot.exts.sync.tracing import RunTrace, StartupCheckIn, sentry_on, track_error
from bot.journal import BreakerChange, Run
from bot.site import RetryPolicy, SiteAPIError, SiteClient

log = logging.getLogger(__name__)

STARTUP, EVENT, COMMAND = "startup", "event", "command"
HEARTBEAT_S = 1.0
STARTING_WAIT_S = 3.0
"""How long a command waits for a starting run's message before answering without its link."""
KINDS = ("roles", "users", "role-delete")
TRIGGER_LABELS = {STARTUP: "start-up", EVENT: "event", COMMAND: "command"}
STATUS_RUNS = 8
TITLES = {"roles": "Role sync", "users": "User sync", "role-delete": "Role deletion"}
LOCK_OF_KIND = {"roles": "roles", "role-delete": "roles", "users": "users"}
HISTORY = 10


@dataclass
class ActiveRun:
    run_id: str
    kind: str
    trigger: str
    actor: str | None
    reporter: RunReporter
    task: asyncio.Task[RunFinished]
    started: float = field(default_factory=time.monotonic)


class SyncCog(commands.Cog, name="Sync"):
    def __init__(self, bot: commands.Bot, settings: Settings) -> None:
        self.bot = bot
        self.settings = settings
        self.client = SiteClient(
            settings.site_api_url,
            settings.site_api_key.reveal(),
            timeout=settings.request_timeout,
            retry=RetryPolicy(attempts=settings.retry_attempts),
        )
        self.engine: SyncEngine | None = None
        self.guild_state: DiscordGuildState | None = None
        self.active: dict[str, ActiveRun] = {}
        self.history: deque[RunFinished] = deque(maxlen=HISTORY)
        self.ready = asyncio.Event()
        self.startup_done = asyncio.Event()
        self._locks = {name: asyncio.Lock() for name in set(LOCK_OF_KIND.values())}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._role_writes = asyncio.Lock()
        self.book = RunBook(None, threshold=settings.breaker_threshold, unavailable="not open yet")
        self._resumes: str | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def cog_load(self) -> None:
        if self.settings.sentry_dsn is not None:
            init_sentry(
                self.settings.sentry_dsn.reveal(),
                self.settings.sentry_environment,
                self.settings.secrets(),
            )

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Start once per process: READY also fires after every reconnect without a resume."""
        if not self._started:
            self._started = True
            self._spawn(self._start(), "sync-startup")

    async def cog_unload(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        if self.engine is not None:
            await self.engine.close()
        await self.client.close()
        await self.book.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def _start(self) -> None:
        """Wait for the full member list, then sync roles and users once."""
        guild = self.bot.get_guild(self.settings.guild_id or 0)
        if guild is None:
            log.error("the bot is not in the configured guild %s", self.settings.guild_id)
            return
        if not guild.chunked:
            try:
                await asyncio.wait_for(guild.chunk(), timeout=self.settings.chunking_timeout)
            except TimeoutError:
                await self.post(
                    f"⚠️ The guild's member list did not finish loading within "
                    f"{self.settings.chunking_timeout:g} s, so no user sync was started (it would "
                    "have marked every member not yet loaded as having left). Run `"
                    f"{self.settings.prefix}sync users` once the bot has every member."
                )
                return
        await self._open_book()
        self.guild_state = DiscordGuildState(guild)
        self.engine = SyncEngine(
            self.client,
            self.guild_state,
            chunk_size=self.settings.chunk_size,
            max_in_flight=self.settings.max_in_flight,
            page_size=self.settings.page_size,
        )
        self.engine.subscribe(self._report_event_errors)
        self.engine.start()
        self.ready.set()
        log.info("guild %s has %s members cached; sync is ready", guild.id, guild.member_count)
        try:
            if self.settings.startup_sync:
                await self._startup_sync()
        finally:
            self.startup_done.set()

    async def _open_book(self) -> None:
        """Open the run journal and tell the log channel about runs a dead process left."""
        self.book = await RunBook.open(
            self.settings.state_url, threshold=self.settings.breaker_threshold
        )
        if self.book.unavailable is not None:
            await self.post(
                f"⚠️ The run journal ({literal(self.book.unavailable)}) is unavailable: "
                "automatic syncs are paused so a failing sync cannot repeat unnoticed. "
                f"Moderators can still run `{self.settings.prefix}sync users`."
            )
        interrupted, changes = await self.book.recover()
        for run in interrupted:
            planned = f" of {count(run.planned)}" if run.planned else ""
            story = (
                f"**{TITLES.get(run.kind, run.kind)}** run `{run.run_id}` ({run.trigger}) was "
                f"interrupted: the bot stopped before it finished ({count(run.done)}{planned} "
                "users written at its last heartbeat). The start-up sync compares again and "
                "writes only what still differs."
            )
            await self._close_orphan_message(run, f"⏹️ Interrupted: {story}")
            await self.post(f"⚠️ {story}")
        self._resumes = interrupted[0].run_id if interrupted else None
        for change in changes:
            await self._announce_breaker(change)
        await self._post_notices()

    async def _close_orphan_message(self, run: Run, text: str) -> None:
        """Edit a dead process's live message, so it no longer looks like a run in progress."""
        channel = self.log_channel
        message_id = run.detail.get("message_id")
        if not isinstance(channel, discord.TextChannel) or not str(message_id).isdigit():
            return
        try:
            await channel.get_partial_message(int(message_id)).edit(
                content=fit(text), allowed_mentions=NO_PINGS
            )
        except discord.HTTPException as error:
            log.warning("could not close the live message of run %s: %s", run.run_id, error)

    async def _startup_sync(self) -> None:
        check_in = StartupCheckIn()
        check_in.begin()
        started = time.monotonic()
        detail = {"resumes": self._resumes} if self._resumes else None
        roles = await self.run("roles", trigger=STARTUP, detail=detail)
        users = None
        if roles is not None and roles.status == "finished":
            users = await self.run("users", trigger=STARTUP, detail=detail)
        ok = users is not None and users.status == "finished"
        check_in.end(ok, time.monotonic() - started)

    # -- runs ------------------------------------------------------------------------------

    @property
    def log_channel(self) -> discord.abc.Messageable | None:
        channel = self.bot.get_channel(self.settings.log_channel_id or 0)
        return channel if isinstance(channel, discord.abc.Messageable) else None

    async def post(self, text: str, **kwargs: Any) -> discord.Message | None:
        channel = self.log_channel
        if channel is None:
            log.error(
                "log channel %s not found; message was: %s", self.settings.log_channel_id, text
            )
            return None
        try:
            return await channel.send(fit(text), allowed_mentions=NO_PINGS, **kwargs)
        except discord.HTTPException:
            log.exception("could not post to the log channel: %s", text)
            return None

    def running(self, kind: str) -> ActiveRun | None:
        lock_name = LOCK_OF_KIND[kind]
        return next((r for r in self.active.values() if LOCK_OF_KIND[r.kind] == lock_name), None)

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
        assert self.engine is not None
        async with self._locks[LOCK_OF_KIND[kind]]:
            started = await self._begin(kind, trigger, actor, dry_run, role, ctx, detail)
            if started is None:
                return None
            ticket, reporter = started
            report = await self._execute(kind, trigger, dry_run, role, ticket, reporter, actor)
            # Journal first: a process stopped right after the summary shows still counts it.
            change = await self.book.finish(
                ticket,
                journal_status(report.status, reporter.chunks_failed),
                error=report.error or reporter.last_error,
                done=reporter.meter.done,
                failed=report.failed,
                planned=reporter.meter.planned or 0,
            )
        # Outside the lock: the next run of this kind need not wait for this summary's edit.
        await reporter.close(report)
        if change is not None:
            await self._announce_breaker(change)
        await self._post_notices()
        self.history.appendleft(report)
        return report

    async def _begin(
        self,
        kind: str,
        trigger: str,
        actor: discord.abc.User | None,
        dry_run: bool,
        role: discord.Role | None,
        ctx: commands.Context | None,
        detail: dict[str, str] | None,
    ) -> tuple[Ticket, RunReporter] | None:
        """Breaker, guard and lease say yes: the run is journalled and its live message posted."""
        automatic = trigger != COMMAND
        if not dry_run:
            refusal = await self.book.admit(kind, automatic=automatic)
            if refusal is not None:
                log.warning("automatic %s run not started: %s", kind, refusal.reason)
                return None
            if automatic and not await self._guard_allows(kind):
                return None
        ticket = await self.book.begin(
            kind,
            LOCK_OF_KIND[kind],
            trigger=trigger,
            actor=f"{actor} ({actor.id})" if actor is not None else None,
            detail=detail,
            wait_for_lock=LEASE_TTL_S + 5 if automatic else 0.0,
        )
        if isinstance(ticket, Refusal):
            if ctx is not None:
                await ctx.reply(f"Not started: {ticket.reason}.", allowed_mentions=NO_PINGS)
            else:
                await self.post(f"⚠️ {TITLES[kind]} ({trigger}) not started: {ticket.reason}.")
            return None
        reporter = RunReporter(
            self.log_channel or _NullChannel(),
            title=TITLES[kind],
            headline=self._headline(kind, trigger, actor, role, dry_run, detail),
            run_id=ticket.run.run_id,
            min_edit_interval=self.settings.progress_interval,
            track_error=track_error,
        )
        message = await reporter.open()
        if message is not None:
            await self.book.note_message(ticket, message.id)
        if ctx is not None:
            await ctx.reply(
                f"Started; follow it here: {reporter.jump_url}", allowed_mentions=NO_PINGS
            )
        return ticket, reporter

    async def _execute(
        self,
        kind: str,
        trigger: str,
        dry_run: bool,
        role: discord.Role | None,
        ticket: Ticket,
        reporter: RunReporter,
        actor: discord.abc.User | None,
    ) -> RunFinished:
        """The engine's run, followed live; a crash or a cancel still ends in a report."""
        assert self.engine is not None
        run_id = ticket.run.run_id
        unsubscribe = [self.engine.subscribe(reporter.feed)]
        if sentry_on():
            unsubscribe.append(self.engine.subscribe(RunTrace(run_id, kind, trigger).feed))
        task = asyncio.create_task(self._engine_run(kind, run_id, trigger, dry_run, role))
        actor_name = str(actor) if actor is not None else None
        self.active[run_id] = ActiveRun(run_id, kind, trigger, actor_name, reporter, task)
        heartbeat = asyncio.create_task(self._heartbeat(ticket, reporter))
        try:
            report = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            report = await _finished_or_cancelled(task, run_id, kind, trigger)
        except Exception as error:  # a bug or an unreadable site: report, never crash
            log.exception("sync run %s failed", run_id)
            report = RunFinished(run_id, kind, trigger, "failed", error=_describe(error))
        finally:
            del self.active[run_id]
            heartbeat.cancel()
        await self.engine.hub.idle()
        for stop in unsubscribe:
            stop()
        return report

    def _headline(
        self,
        kind: str,
        trigger: str,
        actor: discord.abc.User | None,
        role: discord.Role | None,
        dry_run: bool,
        detail: dict[str, str] | None,
    ) -> str:
        what = {
            "roles": "roles",
            "users": "users",
            "role-delete": f"role {literal(role.name) if role else '?'} deleted on Discord",
        }[kind]
        who = f" by {literal(actor.display_name)}" if actor is not None else ""
        resumes = f" · resumes interrupted run `{detail['resumes']}`" if detail else ""
        shown_trigger = TRIGGER_LABELS.get(trigger, trigger)
        return f"{'dry run of ' if dry_run else ''}{what} · {shown_trigger}{who}{resumes}"

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

    async def _announce_breaker(self, change: BreakerChange) -> None:
        p = self.settings.prefix
        if change.opened:
            await self.post(
                f"🛑 **Automatic syncs paused**: {literal(change.describe())}.\n"
                f"Check the error above and the site, then run `{p}sync users` (or `{p}sync "
                f"roles`) as a moderator; when it succeeds, automatic runs resume. "
                f"`{p}sync status` shows the breaker."
            )
        else:
            await self.post(f"✅ {literal(change.describe())}.")

    async def _post_notices(self) -> None:
        for notice in self.book.notices():
            await self.post(f"⚠️ Run journal: {literal(notice)} (set aside; syncing goes on).")

    async def _engine_run(
        self, kind: str, run_id: str, trigger: str, dry_run: bool, role: discord.Role | None
    ) -> RunFinished:
        assert self.engine is not None
        if kind == "roles":
            return await self.engine.sync_roles(dry_run=dry_run, run_id=run_id, trigger=trigger)
        if kind == "users":
            return await self.engine.sync_users(dry_run=dry_run, run_id=run_id, trigger=trigger)
        assert role is not None
        return await self.engine.delete_role(role.id, run_id=run_id, trigger=trigger)

    async def _guard_allows(self, kind: str) -> bool:
        """Ask a moderator before an automatic run removes more than the allowed share.

        If the site cannot even be read for the plan, the run goes ahead and fails on its own,
        so the failure is journalled and counted by the breaker like any other."""
        assert self.engine is not None and self.guild_state is not None
        try:
            if kind == "users":
                plan = await self.engine.plan_users()
                verdict = judge(
                    leaving=plan.leaves,
                    site_users=plan.scanned,
                    role_deletes=0,
                    site_roles=0,
                    left_share=self.settings.guard_left_share,
                    role_share=self.settings.guard_role_delete_share,
                )
                details = describe_plan(plan)
            elif kind == "roles":
                site_roles = await self.client.list_roles()
                role_diff = diff_roles(self.guild_state.roles(), site_roles)
                verdict = judge(
                    leaving=0,
                    site_users=0,
                    role_deletes=len(role_diff.deleted),
                    site_roles=len(site_roles),
                    left_share=self.settings.guard_left_share,
                    role_share=self.settings.guard_role_delete_share,
                )
                names = {role.id: role.name for role in site_roles}
                details = "Would delete: " + ", ".join(
                    f"{literal(names[role_id])} (`{role_id}`)" for role_id in role_diff.deleted
                )
            else:
                return True
        except SiteAPIError as error:
            log.warning("could not plan the automatic %s run (%s); running it", kind, error)
            return True
        if not verdict.trips:
            return True
        view = GuardView(
            self.settings.moderator_role_ids,
            details=lambda: details,
            timeout=self.settings.guard_timeout,
        )
        title = TITLES[kind].lower()
        message = await self.post(
            f"🛑 An automatic {title} would {verdict.reason}. That usually means the bot sees "
            "only part of the guild, or the wrong one. Nothing was written. A moderator can "
            "apply it, look at the details, or cancel.",
            view=view,
        )
        if message is None:
            return False
        view.message = message
        answer, who = await view.answer
        outcome = {
            GuardAnswer.APPLY: f"applied by {literal(who or '?')}",
            GuardAnswer.CANCEL: f"cancelled by {literal(who or '?')}",
            GuardAnswer.TIMED_OUT: "cancelled: nobody answered in time",
        }[answer]
        await self.post(f"Guard for the automatic {title}: {outcome}.")
        return answer is GuardAnswer.APPLY

    async def _report_event_errors(self, event: ProgressEvent) -> None:
        """Errors of writes queued by member events (no run message to attach them to)."""
        if event.run_id in self.active or not isinstance(event, BadRecords | ChunkFailed):
            return
        reporter = RunReporter(
            self.log_channel or _NullChannel(),
            title="Member updates",
            headline="events",
            run_id=event.run_id,
            track_error=track_error,
        )
        await reporter.feed(event)

    # -- listeners -------------------------------------------------------------------------

    def _ours(self, guild: discord.Guild) -> bool:
        return self.engine is not None and guild.id == self.settings.guild_id

    @commands.Cog.listener()
    async def on_guild_role_create(self, role: discord.Role) -> None:
        if self._ours(role.guild):
            self._spawn(self._write_role(role, "created"), "sync-role-create")

    @commands.Cog.listener()
    async def on_guild_role_update(self, before: discord.Role, after: discord.Role) -> None:
        if self._ours(after.guild) and role_record(before) != role_record(after):
            self._spawn(self._write_role(after, "updated"), "sync-role-update")

    async def _write_role(self, role: discord.Role, what: str) -> None:
        """One role event, written at once (see `SyncEngine.write_role`); one write at a time,
        so a create and the update right behind it cannot race each other."""
        assert self.engine is not None
        async with self._role_writes:
            try:
                written = await self.engine.write_role(role.id)
            except SiteAPIError as error:
                event_id = track_error(f"role {what}: {error.summary()}", {"role": str(role.id)})
                sentry = f"\nSentry event: `{event_id}`" if event_id else ""
                await self.post(
                    f"⚠️ **Role {what}** on Discord: {literal(role.name)} (`{role.id}`) could not "
                    f"be written to the site (HTTP {error.status or 'no response'}). Site said: "
                    f"{site_message(error.body or error.reason)}. `{self.settings.prefix}sync "
                    f"roles` writes it again.{sentry}"
                )
                return
        if written is not None:
            log.info("role %s (%s) %s on the site", written.name, written.id, what)

    @commands.Cog.listener()
    async def on_guild_role_delete(self, role: discord.Role) -> None:
        if self._ours(role.guild):
            self._spawn(self.run("role-delete", trigger=EVENT, role=role), "sync-role-delete")

    @commands.Cog.listener()
    async def on_member_join(self, member: discord.Member) -> None:
        if self._ours(member.guild):
            assert self.engine is not None
            self.engine.enqueue_member(member.id, "all", upsert=True)

    @commands.Cog.listener()
    async def on_member_remove(self, member: discord.Member) -> None:
        if self._ours(member.guild):
            assert self.engine is not None
            self.engine.enqueue_member(member.id, {"in_guild"})

    @commands.Cog.listener()
    async def on_member_update(self, before: discord.Member, after: discord.Member) -> None:
        if self._ours(after.guild):
            assert self.engine is not None
            changed = member_record(before).differing_fields(member_record(after))
            if changed:
                self.engine.enqueue_member(after.id, changed)

    @commands.Cog.listener()
    async def on_user_update(self, before: discord.User, after: discord.User) -> None:
        if self.engine is None or self.guild_state is None:
            return
        if self.guild_state.guild.get_member(after.id) is not None:
            self.engine.enqueue_member(after.id, {"name", "display_name", "discriminator"})

    # -- commands --------------------------------------------------------------------------

    async def cog_check(self, ctx: commands.Context) -> bool:
        return is_moderator(ctx.author, self.settings.moderator_role_ids)

    async def cog_command_error(self, ctx: commands.Context, error: Exception) -> None:
        if isinstance(error, commands.CheckFailure):
            await ctx.reply("Only moderators can run sync commands.", allowed_mentions=NO_PINGS)
        elif isinstance(error, commands.UserInputError):
            await ctx.reply(fit(f"{error}"), allowed_mentions=NO_PINGS)
        else:
            return
        ctx.command_failed_handled = True  # type: ignore[attr-defined]

    @commands.group(name="sync", invoke_without_command=True)
    async def sync_group(self, ctx: commands.Context) -> None:
        """Sync the site with the guild."""
        p = ctx.clean_prefix
        await ctx.reply(
            f"`{p}sync users [--dry-run]` · `{p}sync roles [--dry-run]` · `{p}sync status` · "
            f"`{p}sync cancel`",
            allowed_mentions=NO_PINGS,
        )

    async def _command_run(self, ctx: commands.Context, kind: str, options: str) -> None:
        dry_run = _parse_options(options)
        if self.engine is None:
            await ctx.reply(
                "Not ready yet: the bot is still loading the guild's member list.",
                allowed_mentions=NO_PINGS,
            )
            return
        current = await self._running_or_starting(kind)
        if current is not None:
            await ctx.reply(
                f"A {TITLES[current.kind].lower()} is already running "
                f"(run `{current.run_id}`); watch it here: {current.reporter.jump_url}",
                allowed_mentions=NO_PINGS,
            )
            return
        if self._locks[LOCK_OF_KIND[kind]].locked():
            await ctx.reply(
                f"A {TITLES[kind].lower()} is about to start (it may be waiting for a "
                "moderator's answer in the log channel); not starting another.",
                allowed_mentions=NO_PINGS,
            )
            return
        # Awaited here, not spawned, so the lock is taken before another command checks it; the
        # command's task joins the cog's tasks, so unloading the cog cancels the run and reports it.
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.run(kind, trigger=COMMAND, actor=ctx.author, dry_run=dry_run, ctx=ctx)
        finally:
            self._tasks.discard(task)

    async def _running_or_starting(self, kind: str) -> ActiveRun | None:
        """The run of this kind, waiting briefly for one that holds the lock but has not posted
        its message yet (a command sent twice in a row must not queue a second run)."""
        lock = self._locks[LOCK_OF_KIND[kind]]
        deadline = time.monotonic() + STARTING_WAIT_S
        # Polled: neither registering a run nor releasing the lock signals an event.
        while self.running(kind) is None and lock.locked() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return self.running(kind)

    @sync_group.command(name="users")
    async def sync_users(self, ctx: commands.Context, *, options: str = "") -> None:
        """Compare every member with the site and write what differs."""
        await self._command_run(ctx, "users", options)

    @sync_group.command(name="roles")
    async def sync_roles(self, ctx: commands.Context, *, options: str = "") -> None:
        """Compare the guild's roles with the site and write what differs."""
        await self._command_run(ctx, "roles", options)

    @sync_group.command(name="cancel")
    async def cancel(self, ctx: commands.Context) -> None:
        """Stop the runs in progress; what was written stays written, a rerun does the rest."""
        if not self.active:
            await ctx.reply("No sync is running.", allowed_mentions=NO_PINGS)
            return
        for active in list(self.active.values()):
            active.task.cancel()
        await ctx.reply(
            f"Cancelling {count(len(self.active))} run(s); the log shows where each stopped.",
            allowed_mentions=NO_PINGS,
        )

    @sync_group.command(name="status")
    async def status(self, ctx: commands.Context) -> None:
        """The runs in progress with their live numbers, the last runs, and the breaker."""
        lines = []
        for active in self.active.values():
            meter = active.reporter.meter
            planned = "?" if meter.planned is None else count(meter.planned)
            lines.append(
                f"▶️ {TITLES[active.kind]} `{active.run_id}` ({active.trigger}): "
                f"{count(meter.done)} / {planned} users, {count(round(meter.rate))}/s — "
                f"{active.reporter.jump_url}"
            )
        if not lines:
            lines.append("No sync is running.")
        lines.extend(f"🛑 {literal(reason)}" for reason in await self.book.paused_kinds(KINDS))
        if self.book.unavailable is not None:
            lines.append(f"⚠️ Run journal unavailable: {literal(self.book.unavailable)}")
        runs = await self.book.recent(limit=STATUS_RUNS)
        if runs:
            lines.append("**Last runs**")
            lines.extend(_run_line(run) for run in runs)
        elif self.history:
            lines.append("**Last runs (this process)**")
            lines.extend(
                f"• {TITLES.get(r.kind, r.kind)} `{r.run_id}` ({r.trigger}): {summary(r)}"
                for r in self.history
            )
        await ctx.reply(fit("\n".join(lines)), allowed_mentions=NO_PINGS)


def _run_line(run: Run) -> str:
    when = discord.utils.format_dt(run.started_at, "R")
    who = f" by {literal(run.actor)}" if run.actor else ""
    planned = f" / {count(run.planned)}" if run.planned else ""
    line = (
        f"• {TITLES.get(run.kind, run.kind)} `{run.run_id}` {when} ({run.trigger}{who}): "
        f"**{run.status}**, {count(run.done)}{planned} users"
    )
    if run.failed:
        line += f", {count(run.failed)} failed"
    if run.last_error:
        line += f" — {site_message(run.last_error, limit=120)}"
    return line


def _parse_options(options: str) -> bool:
    words = options.split()
    unknown = [w for w in words if w != "--dry-run"]
    if unknown:
        raise commands.BadArgument(
            f"Unknown option {literal(unknown[0])}; the only option is `--dry-run`."
        )
    return bool(words)


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


async def _finished_or_cancelled(
    task: asyncio.Task[RunFinished], run_id: str, kind: str, trigger: str
) -> RunFinished:
    try:
        return await task
    except asyncio.CancelledError:
        return RunFinished(run_id, kind, trigger, "cancelled")


class _NullChannel:
    """Stands in for a missing log channel so a run still happens (and is logged)."""

    async def send(self, content: str, **_: Any) -> None:
        log.warning("no log channel: %s", content)
        return None
