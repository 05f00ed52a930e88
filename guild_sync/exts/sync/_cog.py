"""The Sync cog: Discord events and moderator commands in, engine writes and runs out.

Everything that writes to the site goes through the engine: member events through its coalescing
queue, role creates and updates as single writes, role deletions, commands and the start-up sync
as runs (`runs.py`). Nothing syncs before the guild's member list is complete. A moderator asking
twice is told where to watch the run in progress; an automatic run waits its turn.

A reconnect that cannot resume (INVALID_SESSION, a refused RESUME) gives discord.py a fresh READY:
it drops its cache and builds new `Guild` objects, and Discord replays nothing of what happened
while the bot was away. The cog then stops the runs in progress (the `!sync cancel` path), holds
the engine's writes, waits until the new cache holds every member, reads that one from then on,
and reconciles with a role sync, then a user sync, which also redo whatever the stopped runs had
left (a role sync deletes the roles the guild no longer has, stripping their holders first).

The member list is loaded by discord.py; the cog only waits for it, and asks again when Discord
answered a request with RATE_LIMITED (one request for all members per guild every 30 s), which
discord.py does not handle. A guild unavailable at READY is waited for however long it takes.
While the guild is unavailable (a Discord outage: GUILD_DELETE `unavailable: true`), the engine's
writes are held and no run starts; they go on once it is back with its whole member list.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from guild_sync.config import Settings
from guild_sync.engine import SyncEngine
from guild_sync.engine.progress import BadRecords, ChunkFailed, ProgressEvent
from guild_sync.exts.sync._bookkeeping import RunBook
from guild_sync.exts.sync._checks import OutsideGuild, check_command
from guild_sync.exts.sync._discord_guild import (
    MEMBER_REQUEST_WINDOW_S,
    DiscordGuildState,
    MemberRequests,
    RateLimitNotice,
    ask_for_members_again,
    cache_complete,
    chunk_timeout,
    member_record,
    role_record,
)
from guild_sync.exts.sync._messages import count, fit, literal, site_message
from guild_sync.exts.sync._metrics import SyncMetrics
from guild_sync.exts.sync._reconcile import Reconciler
from guild_sync.exts.sync._rejections import Rejections
from guild_sync.exts.sync._reporter import NO_PINGS, RunReporter, summary
from guild_sync.exts.sync._runs import (
    COMMAND,
    EVENT,
    KINDS,
    STARTUP,
    TITLES,
    ActiveRun,
    NullChannel,
    Runs,
)
from guild_sync.exts.sync._sentry import setup_sentry
from guild_sync.exts.sync._slash import (
    DryRun,
    InteractionLost,
    command_prefix,
    defer,
    ensure_registered,
    registration_failure,
    slash_only_notice,
)
from guild_sync.exts.sync._tracing import StartupCheckIn, track_error
from guild_sync.journal import Run
from guild_sync.site import RetryPolicy, SiteAPIError, SiteClient
from guild_sync.times import duration, span, until

log = logging.getLogger(__name__)

STATUS_RUNS = 8
DRY_RUN_HELP = "Only show what would be written; write nothing"
RECONNECT = "reconnect"
"""The trigger of the syncs that follow a fresh READY (a reconnect that could not resume)."""
EVENT_REJECTIONS_S = 900.0
"""How long member events' rejected records keep editing one message before a new one."""


class SyncCog(commands.Cog, name="Sync"):
    def __init__(self, bot: commands.Bot, settings: Settings) -> None:
        self.bot = bot
        self.settings = settings
        self.client = SiteClient(
            settings.site_api_url,
            settings.site_api_key.get_secret_value(),
            timeout=settings.request_timeout,
            retry=RetryPolicy(attempts=settings.retry_attempts),
        )
        self.engine: SyncEngine | None = None
        self.guild_state: DiscordGuildState | None = None
        self.runs: Runs | None = None
        """Set once the guild is fully chunked: no sync of any kind runs on a partial cache.
        Cleared again while a fresh READY's new cache loads."""
        self.ready = asyncio.Event()
        self.startup_done = asyncio.Event()
        self._built = asyncio.Event()
        """Set once the engine and the runs exist (the start-up got past loading the guild)."""
        self.sessions_replaced = 0
        """Fresh READYs after the first: gateway sessions replaced by a reconnect without resume."""
        self._stopped: list[ActiveRun] = []
        """Runs stopped because the session was replaced, told in the reconcile's message."""
        self._reloading: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._role_writes = asyncio.Lock()
        self._event_rejections: Rejections | None = None
        self.book = RunBook(None, threshold=settings.breaker_threshold, unavailable="not open yet")
        self._resumes: str | None = None
        self.member_requests = MemberRequests(bot)
        """Discord's RATE_LIMITED answers to member requests (discord.py has no handler)."""
        self._outage: asyncio.Task[None] | None = None
        """Waits for the guild to come back from an outage, then resumes the engine."""
        self.metrics = SyncMetrics.of(bot, settings)
        """Through the host's `bot.stats` (statsd) when it has one; see `_metrics.py`."""
        self.prefix_commands = settings.prefix_commands
        self.app_commands_ready = asyncio.Event()
        """Set once the slash commands' registration was checked (done, or refused)."""
        if settings.guild_id is not None:
            # Guild commands, of the configured guild only: they show there at once (global
            # ones take up to an hour), nowhere else (no other guild's administrator can run
            # them, the same rule as `check_command`), and never in DMs.
            # On the app command itself: discord.py 2.5 sets a hybrid group's default guilds
            # on the group object, which nothing reads (2.7 unwraps it), and so made the
            # commands global.
            app_commands.guilds(settings.guild_id)(self.sync_group.app_command)
        if not self.prefix_commands:
            self._drop_prefix_commands()

    def _drop_prefix_commands(self) -> None:
        """SYNC_PREFIX_COMMANDS=false: the hybrid group is not added as a prefix command (the
        host's `!sync`, if it has one, is left alone, and `!help` does not list it); its slash
        side is added to the tree by `cog_load`. The commands still belong to this cog, so the
        moderator check, the deferral and the error handler apply as with prefix commands."""
        group = self.sync_group
        self.__cog_commands__ = tuple(
            c for c in self.__cog_commands__ if c is not group and c.root_parent is not group
        )
        for command in (group, *group.walk_commands()):
            command.cog = self

    # -- lifecycle -------------------------------------------------------------------------

    async def cog_load(self) -> None:
        setup_sentry(self.settings)  # the host's client if it has one (see _sentry.py)
        if not self.prefix_commands:
            self.bot.tree.add_command(self.sync_group.app_command)
            log.info(
                "prefix commands are off (SYNC_PREFIX_COMMANDS=false): slash commands only, "
                "and no Message Content intent needed"
            )
        # Drift repair: waits for `startup_done`; cancelled with the other tasks on unload.
        self.reconciler = Reconciler.of(self)
        self._spawn(self.reconciler.run(), "sync-reconcile-timer")
        if self.bot.is_ready():
            self._begin()  # loaded after READY: on_ready has been and gone

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        self._begin()

    def _begin(self) -> None:
        """Start once per load, however the host loads the extension: before login (on_ready
        starts it), after READY or after `guild_available` (pydis_core's loader; discord.py
        dispatches `ready` right after it, so such an extension never sees on_ready and
        cog_load starts it), or by a reload. READY also fires after every reconnect without a
        resume, which `on_connect` handles."""
        if not self._started:
            self._started = True
            self._spawn(self._start(), "sync-startup")

    @commands.Cog.listener()
    async def on_connect(self) -> None:
        """Dispatched by every READY, not by a resume. After the first start, a READY means
        discord.py has dropped the cache every run reads and is loading a new one: stop the runs
        in progress and hold the engine's writes now, reconcile once the new one is complete.
        A run that had not started yet (waiting for its lock, the journal or a moderator's answer)
        is not stopped: it reads the old cache, and its writes wait for the new one."""
        self.member_requests.forget()  # READY ends discord.py's open member requests
        if not self._started:
            return
        if self._outage is not None:
            self._outage.cancel()  # the reload waits for the new guild and resumes itself
        self.sessions_replaced += 1
        self.ready.clear()
        if self.engine is not None:
            self.engine.pause()
        active = list(self.runs.active.values()) if self.runs is not None else []
        for run in active:
            run.task.cancel()  # as `!sync cancel` does: what was written stays written
        self._stopped.extend(active)
        log.warning(
            "gateway session replaced (a reconnect without resume); stopped %d run(s)%s; "
            "syncing roles and users once the new member list is loaded",
            len(active),
            "".join(f" {run.run_id}" for run in active),
        )
        if self._reloading is not None:
            self._reloading.cancel()  # the cache it waited for was dropped in turn
        self._reloading = self._spawn(self._reload(), "sync-reload")

    async def cog_unload(self) -> None:
        await self.metrics.close()  # first: a later step that raises must not keep the port
        if not self.prefix_commands and self.settings.guild_id is not None:
            # Not a prefix command, so discord.py's unloading does not take it off the tree.
            self.bot.tree.remove_command(
                self.sync_group.app_command.name, guild=discord.Object(self.settings.guild_id)
            )
        self.member_requests.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        if self.engine is not None:
            # While a new cache loads, queued writes would be built from the old one: drop them.
            await self.engine.close(flush_within_s=10.0 if self.ready.is_set() else 0.0)
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
        """Wait for the full member list, however long it takes, then sync roles and users once.
        READY may come before the guild does (unavailable at READY, its GUILD_CREATE late):
        the start-up goes on when it comes."""
        if self.bot.get_guild(self.settings.guild_id or 0) is None:
            log.error(
                "the bot is not in the configured guild %s; waiting for it to join",
                self.settings.guild_id,
            )
        guild = await self._complete_guild(self.settings.chunking_timeout)
        if guild is None:
            await self._post_or_log(
                f"⚠️ The guild's member list did not finish loading within "
                f"{span(self.settings.chunking_timeout)}, so no sync has started (a user sync "
                "would mark every member not yet loaded as having left). The bot keeps waiting "
                "and syncs once it has every member."
            )
            guild = await self._complete_guild(None)
            assert guild is not None
        # Spawned: a slow or refused registration must not hold the start-up sync back.
        self._spawn(self._setup_app_commands(), "sync-app-commands")
        self.guild_state = DiscordGuildState(guild)
        self.book = await RunBook.open(
            self.settings.state_url, threshold=self.settings.breaker_threshold
        )
        self.engine = SyncEngine(
            self.client,
            self.guild_state,
            chunk_size=self.settings.chunk_size,
            max_in_flight=self.settings.max_in_flight,
            page_size=self.settings.page_size,
        )
        self.runs = Runs(
            settings=self.settings,
            engine=self.engine,
            book=self.book,
            channel=lambda: self.log_channel,
            post=self.post,
            metrics=self.metrics,
        )
        self._spawn(self.metrics.watch(self.engine), "sync-metrics")
        await self._report_recovery(self.runs)
        self.engine.subscribe(self._report_event_errors)
        self.engine.start()
        self.ready.set()
        self._built.set()
        log.info("guild %s has %s members cached; sync is ready", guild.id, guild.member_count)
        if not cache_complete(self.guild_state.guild) and self._outage is None:
            self._pause_for_outage()  # it went away while the engine was being built
        try:
            if self.settings.startup_sync:
                await self._startup_sync()
        finally:
            self.startup_done.set()

    async def _setup_app_commands(self) -> None:
        """Register the slash commands on the configured guild unless Discord has them already
        (`ensure_registered`), and tell the log channel what an operator must act on: a
        refused registration, or (once per start) that the bot answers slash commands only."""
        guild_id = self.settings.guild_id
        assert guild_id is not None
        try:
            synced = await ensure_registered(self.bot, guild_id)
        except discord.HTTPException as error:
            log.warning("could not register the slash commands on guild %s: %s", guild_id, error)
            await self._post_or_log(registration_failure(error, self.prefix_commands))
            return
        finally:
            self.app_commands_ready.set()
        if synced:
            log.info("registered the slash commands %s on guild %s", ", ".join(synced), guild_id)
        else:
            log.info("the slash commands are registered on guild %s already", guild_id)
        if not self.prefix_commands:
            await self._post_or_log(slash_only_notice())

    async def _report_recovery(self, runs: Runs) -> None:
        """Tell the log channel about the journal, and the runs a dead process left behind."""
        if self.book.unavailable is not None:
            await self.post(
                f"⚠️ The run journal ({literal(self.book.unavailable)}) is unavailable: "
                "automatic syncs are paused so a failing sync cannot repeat unnoticed. "
                f"Moderators can still run `{command_prefix(self.settings)}sync users`."
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
            await runs.announce_breaker(change)
        await runs.post_notices()

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
        ok = await self._roles_then_users(STARTUP, detail)
        check_in.end(ok, time.monotonic() - started)

    async def _roles_then_users(self, trigger: str, detail: dict[str, str] | None = None) -> bool:
        """A role sync, then (if it finished) a user sync; whether both finished."""
        assert self.runs is not None
        roles = await self.runs.run("roles", trigger=trigger, detail=detail)
        users = None
        if roles is not None and roles.status == "finished" and await self._member_list_whole():
            users = await self.runs.run("users", trigger=trigger, detail=detail)
        return users is not None and users.status == "finished"

    async def _member_list_whole(self) -> bool:
        """Whether a user sync may start: waits while the member list reloads (a fresh READY,
        an outage: `ready` is clear), then checks the cache itself (`cache_complete`)."""
        assert self.guild_state is not None
        await self.ready.wait()
        if self.guild_state.fully_chunked:
            return True
        guild = self.guild_state.guild
        log.warning(
            "user sync not started: the member list is incomplete (%d of %s members cached)",
            len(guild.members),
            guild.member_count,
        )
        return False

    async def _complete_guild(self, within: float | None) -> discord.Guild | None:
        """The client's current `Guild` once its cache holds every member (`cache_complete`);
        None if that takes longer than `within` seconds (None: no limit). Asked again on every
        turn: a fresh READY replaces the object."""
        guild_id = self.settings.guild_id or 0
        try:
            async with asyncio.timeout(within):
                while True:
                    guild = self.bot.get_guild(guild_id)
                    if guild is not None and cache_complete(guild):
                        return guild
                    if guild is None or guild.unavailable:
                        # READY's stub, or an outage: discord.py says when GUILD_CREATE and
                        # chunking are done (a guild the bot joins later comes as a join).
                        await self._woken_by("guild_available", "guild_join")
                        continue
                    try:
                        await self._load_members(guild)
                    except (discord.ConnectionClosed, ConnectionError) as error:
                        log.warning("asking for the member list failed (%s); waiting", error)
                        await self._woken_by("guild_available", "resumed")
        except TimeoutError:
            return None

    async def _load_members(self, guild: discord.Guild) -> None:
        """Wait until the guild's cache holds every member, asking Discord again for the ones a
        request never brought. `guild.chunk()` joins the request in progress (discord.py's own
        at start-up). Each wait lasts discord.py's chunk timeout; when one ends with the list
        still partial and no chunk came meanwhile, the request is lost: Discord rate limited it
        (RATE_LIMITED, `retry_after`) or sent nothing. Then, once past the request's timeout, the
        log channel is told (once), and the bot asks again when Discord allows it: after
        `retry_after`, or a full 30 s window when Discord said nothing."""
        limit = chunk_timeout(guild)
        asked_at = time.monotonic()
        told = False
        while not cache_complete(guild):
            if guild.unavailable or self.bot.get_guild(guild.id) is not guild:
                return  # the caller waits for the guild (or the new one) again
            notice = self.member_requests.notice(guild.id)
            if notice is None:
                cached = len(guild.members)
                await self._first_done(
                    guild.chunk(), self.member_requests.wait_for_notice(guild.id), within=limit
                )
                if guild.unavailable or self.bot.get_guild(guild.id) is not guild:
                    return  # a READY ended the request (and replaced the guild), or an outage
                notice = self.member_requests.notice(guild.id)
                if cache_complete(guild) or (notice is None and len(guild.members) > cached):
                    continue  # done, or chunks still arriving: wait for the rest
            if notice is not None:
                asked_at = min(asked_at, notice.at)
                retry_at = notice.retry_at
            else:
                retry_at = time.monotonic() + MEMBER_REQUEST_WINDOW_S
            deadline = asked_at + limit
            if not told and max(retry_at, time.monotonic()) >= deadline:
                # Not whole within the request's timeout (past, or before the retry can be
                # sent): say so once the timeout has passed.
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))
                told = True
                await self._tell_member_list_incomplete(guild, limit, notice, retry_at)
            await asyncio.sleep(max(0.0, retry_at - time.monotonic()))  # Discord's retry_after
            self.member_requests.forget(guild.id)
            log.info("asking Discord again for the members of guild %s", guild.id)
            await ask_for_members_again(guild)

    async def _tell_member_list_incomplete(
        self, guild: discord.Guild, limit: float, notice: RateLimitNotice | None, retry_at: float
    ) -> None:
        why = (
            f"Discord rate limited the bot's request for it (one request per guild every "
            f"{span(MEMBER_REQUEST_WINDOW_S)}; retry after {duration(notice.retry_after)})"
            if notice is not None
            else "Discord sent no more of it"
        )
        await self._post_or_log(
            f"⚠️ The guild's member list is still incomplete after {span(limit)} "
            f"({count(len(guild.members))} of {count(guild.member_count or 0)} members): {why}. "
            f"The bot asks again {until(retry_at - time.monotonic())}; no user sync "
            "starts before the list is complete."
        )

    @staticmethod
    async def _first_done(*waits: Coroutine[Any, Any, Any], within: float) -> None:
        """Wait up to `within` seconds for the first of these to finish, then cancel the rest
        (cancelling a `guild.chunk()` leaves discord.py's request open for its next waiter)."""
        tasks = [asyncio.ensure_future(wait) for wait in waits]
        try:
            done, _ = await asyncio.wait(tasks, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
        for task in done:
            task.result()  # a connection closed while asking: the caller waits for it

    async def _woken_by(self, *events: str) -> None:
        """Wait for the first of these gateway events (registered before this yields)."""
        waits = [asyncio.ensure_future(self.bot.wait_for(event)) for event in events]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _reload(self) -> None:
        """After a fresh READY: once the new cache holds every member, read it from then on and
        reconcile with a role sync, then a user sync. Never waits for a run: a run that started
        meanwhile waits for the writes this resumes."""
        await self._built.wait()
        assert self.engine is not None and self.guild_state is not None
        self.ready.clear()
        self.engine.pause()  # again: the start-up may have built the engine after on_connect
        guild = await self._complete_guild(self.settings.chunking_timeout)
        if guild is None:
            await self.post(
                "⚠️ Reconnected without resume, but the guild's member list did not finish "
                f"loading within {span(self.settings.chunking_timeout)}. Syncs and member updates "
                "wait until it has (a partial list would mark the members not yet loaded as "
                "having left)."
            )
            guild = await self._complete_guild(None)
            assert guild is not None
        self.guild_state.rebind(guild)
        self.engine.resume()
        self.ready.set()
        stopped, self._stopped = self._stopped, []
        log.info("new member list loaded (%s members); reconciling", len(guild.members))
        await self.post(_reconcile_message(len(guild.members), stopped))
        # Spawned: a READY while it runs cancels its runs and reloads without waiting for it.
        self._spawn(self._roles_then_users(RECONNECT), "sync-reconcile")

    # -- guild outages -----------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_guild_unavailable(self, guild: discord.Guild) -> None:
        """GUILD_DELETE with `unavailable: true`: Discord lost the guild for a while and sends
        none of its events until a GUILD_CREATE brings it back. Hold the engine's writes and
        start no run meanwhile; the runs in progress wait and go on afterwards."""
        if guild.id == self.settings.guild_id and self._built.is_set() and self._outage is None:
            self._pause_for_outage()

    def _pause_for_outage(self) -> None:
        assert self.engine is not None
        self.ready.clear()
        self.engine.pause()
        active = list(self.runs.active.values()) if self.runs is not None else []
        log.warning(
            "guild %s is unavailable on Discord (an outage): writes held, %d run(s) paused%s",
            self.settings.guild_id,
            len(active),
            "".join(f" {run.run_id}" for run in active),
        )
        self._outage = self._spawn(self._after_outage(active), "sync-outage")

    async def _after_outage(self, paused: list[ActiveRun]) -> None:
        """Once the guild is back with its whole member list, resume; tell the log channel then
        (its channel is in the guild, so not while the guild is away)."""
        assert self.engine is not None and self.guild_state is not None
        started = time.monotonic()
        try:
            guild = await self._complete_guild(None)
            assert guild is not None
            self.guild_state.rebind(guild)
            self.engine.resume()
            self.ready.set()
        finally:
            self._outage = None
        took = time.monotonic() - started
        log.info("guild %s is available again after %.1f s; writes resumed", guild.id, took)
        runs = ", ".join(
            f"{TITLES.get(run.kind, run.kind).lower()} `{run.run_id}`" for run in paused
        )
        await self.post(
            f"⏸️ **The guild was unavailable on Discord** for {duration(took)} (an outage). No new "
            "write was sent meanwhile"
            + (f"; the run(s) paused by it go on now: {runs}." if runs else ".")
        )

    async def _post_or_log(self, text: str) -> None:
        """Post to the log channel if the bot can see it; while the guild holding it is not
        available (READY's stub, an outage), log the text instead."""
        if self.log_channel is None:
            log.warning("log channel not available yet; message was: %s", text)
            return
        await self.post(text)

    # -- the log channel ---------------------------------------------------------------------

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

    async def _report_event_errors(self, event: ProgressEvent) -> None:
        """Errors of writes queued by member events (no run message to attach them to)."""
        assert self.runs is not None
        if event.run_id in self.runs.active or not isinstance(event, BadRecords | ChunkFailed):
            return
        if isinstance(event, BadRecords):
            await self._event_rejections_now().add(event)
            return
        reporter = RunReporter(
            self.log_channel or NullChannel(),
            title="Member updates",
            headline="events",
            run_id=event.run_id,
            track_error=track_error,
        )
        await reporter.feed(event)

    def _event_rejections_now(self) -> Rejections:
        """Member events have no run to end: their rejected records share one message (and
        one Sentry event per cause) until it is EVENT_REJECTIONS_S old, then a new one."""
        current = self._event_rejections
        posted = current.posted_at if current is not None else None
        if current is None or (posted and time.monotonic() - posted > EVENT_REJECTIONS_S):
            current = self._event_rejections = Rejections(
                self.log_channel or NullChannel(),
                title="Member updates",
                run_id="events",
                min_edit_interval=self.settings.progress_interval,
                track_error=track_error,
            )
        return current

    # -- listeners -------------------------------------------------------------------------

    def _ours(self, guild: discord.Guild) -> bool:
        return self.engine is not None and guild.id == self.settings.guild_id

    @commands.Cog.listener()
    async def on_guild_role_create(self, role: discord.Role) -> None:
        if self._ours(role.guild):
            self._spawn_role_write(role, "created")

    @commands.Cog.listener()
    async def on_guild_role_update(self, before: discord.Role, after: discord.Role) -> None:
        if self._ours(after.guild) and role_record(before) != role_record(after):
            self._spawn_role_write(after, "updated")

    def _spawn_role_write(self, role: discord.Role, what: str) -> None:
        """Announce the role's write as the event is seen, before it waits for its turn, so a
        member update right behind it is held until the role is on the site."""
        assert self.engine is not None
        role_writes = self.engine.role_writes
        role_writes.begin(role.id)
        task = self._spawn(self._write_role(role, what), f"sync-role-{what}")
        task.add_done_callback(lambda _: role_writes.end(role.id))

    async def _write_role(self, role: discord.Role, what: str) -> None:
        """One role event, written at once (see `SyncEngine.write_role`); one write at a time,
        so a create and the update right behind it cannot race each other. While a fresh
        READY's cache loads, it waits: the role is read from the cache that replaces it."""
        assert self.engine is not None
        await self.ready.wait()
        async with self._role_writes:
            try:
                written = await self.engine.write_role(role.id)
            except SiteAPIError as error:
                event_id = track_error(f"role {what}: {error.summary()}", {"role": str(role.id)})
                sentry = f"\nSentry event: `{event_id}`" if event_id else ""
                await self.post(
                    f"⚠️ **Role {what}** on Discord: {literal(role.name)} (`{role.id}`) could not "
                    f"be written to the site (HTTP {error.status or 'no response'}). Site said: "
                    f"{site_message(error.body or error.reason)}. "
                    f"`{command_prefix(self.settings)}sync roles` writes it again.{sentry}"
                )
                return
        if written is not None:
            log.info("role %s (%s) %s on the site", written.name, written.id, what)

    @commands.Cog.listener()
    async def on_guild_role_delete(self, role: discord.Role) -> None:
        if self._ours(role.guild):
            assert self.runs is not None
            run = self.runs.run("role-delete", trigger=EVENT, role=role)
            self._spawn(run, "sync-role-delete")

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
        """Moderators of the configured guild, typing there: not in a DM, and not in another
        guild the bot is in, whose administrators have no say over this guild's site. A slash
        command is checked here too (it is the same hybrid command): who sees it on Discord is
        a guild's setting, who may run it is this check."""
        return check_command(ctx, self.settings.guild_id, self.settings.moderator_role_ids)

    async def cog_before_invoke(self, ctx: commands.Context) -> None:
        """A slash command that passed the check is acknowledged before anything slow runs."""
        await defer(ctx)

    async def cog_command_error(self, ctx: commands.Context, error: Exception) -> None:
        if isinstance(error, InteractionLost):
            pass  # logged by `defer`; Discord already told the member it failed
        elif isinstance(error, OutsideGuild):
            await _refuse(ctx, str(error))
        elif isinstance(error, commands.CheckFailure):
            await _refuse(ctx, "Only moderators can run sync commands.")
        elif isinstance(error, commands.UserInputError):
            await _refuse(ctx, fit(f"{error}"))
        else:
            return
        ctx.command_failed_handled = True  # type: ignore[attr-defined]
        # python-discord/bot's error handler skips errors that carry `handled` (host-bot.md),
        # so a refusal is answered once, here.
        error.handled = True  # type: ignore[attr-defined]

    @commands.hybrid_group(name="sync", invoke_without_command=True)
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_roles=True)  # _slash.MODERATOR_PERMISSIONS: why
    async def sync_group(self, ctx: commands.Context) -> None:
        """Sync the site with the guild."""
        p = ctx.clean_prefix
        await ctx.reply(
            f"`{p}sync users [--dry-run]` · `{p}sync roles [--dry-run]` · `{p}sync status` · "
            f"`{p}sync cancel`",
            allowed_mentions=NO_PINGS,
        )

    async def _command_run(self, ctx: commands.Context, kind: str, dry_run: bool) -> None:
        runs = self.runs
        whole = self.guild_state is not None and self.guild_state.fully_chunked
        if runs is None or not self.ready.is_set() or not whole:
            await ctx.reply(
                "Not ready yet: the bot is still loading the guild's member list.",
                allowed_mentions=NO_PINGS,
            )
            return
        current = await runs.running_or_starting(kind)
        if current is not None:
            await ctx.reply(
                f"A {TITLES[current.kind].lower()} is already running "
                f"(run `{current.run_id}`); watch it here: {current.reporter.jump_url}",
                allowed_mentions=NO_PINGS,
            )
            return
        if runs.lock_of(kind).locked():
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
            await runs.run(kind, trigger=COMMAND, actor=ctx.author, dry_run=dry_run, ctx=ctx)
        finally:
            self._tasks.discard(task)

    @sync_group.command(name="users")
    @app_commands.describe(dry_run=DRY_RUN_HELP)
    async def sync_users(
        self,
        ctx: commands.Context,
        *,
        dry_run: bool = commands.parameter(converter=DryRun, default=False),
    ) -> None:
        """Compare every member with the site and write what differs."""
        await self._command_run(ctx, "users", dry_run)

    @sync_group.command(name="roles")
    @app_commands.describe(dry_run=DRY_RUN_HELP)
    async def sync_roles(
        self,
        ctx: commands.Context,
        *,
        dry_run: bool = commands.parameter(converter=DryRun, default=False),
    ) -> None:
        """Compare the guild's roles with the site and write what differs."""
        await self._command_run(ctx, "roles", dry_run)

    @sync_group.command(name="cancel")
    async def cancel(self, ctx: commands.Context) -> None:
        """Stop the runs in progress; what was written stays written, a rerun does the rest."""
        active_runs = list(self.runs.active.values()) if self.runs is not None else []
        if not active_runs:
            await ctx.reply("No sync is running.", allowed_mentions=NO_PINGS)
            return
        for active in active_runs:
            active.task.cancel()
        await ctx.reply(
            f"Cancelling {count(len(active_runs))} run(s); the log shows where each stopped.",
            allowed_mentions=NO_PINGS,
        )

    @sync_group.command(name="status")
    async def status(self, ctx: commands.Context) -> None:
        """The runs in progress with their live numbers, the last runs, and the breaker."""
        lines = []
        active_runs = list(self.runs.active.values()) if self.runs is not None else []
        history = list(self.runs.history) if self.runs is not None else []
        for active in active_runs:
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
        elif history:
            lines.append("**Last runs (this process)**")
            lines.extend(
                f"• {TITLES.get(r.kind, r.kind)} `{r.run_id}` ({r.trigger}): {summary(r)}"
                for r in history
            )
        await ctx.reply(fit("\n".join(lines)), allowed_mentions=NO_PINGS)


async def _refuse(ctx: commands.Context, text: str) -> None:
    """A refusal: a reply to a prefix command; to a slash command, an ephemeral answer (only the
    member who asked sees it). Not answered in time, it is only logged: nothing else can be."""
    try:
        await ctx.reply(text, ephemeral=True, allowed_mentions=NO_PINGS)
    except discord.HTTPException as error:
        log.warning("could not answer a refused sync command: %s", error)


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


def _reconcile_message(members: int, stopped: list[ActiveRun]) -> str:
    text = (
        "🔌 **Reconnected without resume: reconciling.** Discord could not resume the bot's "
        "gateway session, so the changes made while the bot was away were never sent to it. "
        f"The member list is loaded again ({count(members)} members); a role sync, then a user "
        "sync, write what differs."
    )
    if stopped:
        runs = ", ".join(
            f"{TITLES.get(run.kind, run.kind).lower()} `{run.run_id}` ({run.trigger})"
            for run in stopped
        )
        text += f"\nStopped when the session was replaced, redone by these syncs: {runs}."
    return text
