"""LoopbackDiscord: the emulator's one public object. It binds an aiohttp server on 127.0.0.1,
serves the REST API and the gateway, and gives tests and scenarios the controls of a guild's
members and moderators: change roles and members, post messages, click buttons, drop sockets."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Self

from aiohttp import web

from .app_commands import ApplicationCommands, RegisteredCommand
from .gateway import (
    GUILD_MEMBERS,
    MEMBER_REQUEST_WINDOW_S,
    MESSAGE_CONTENT,
    Gateway,
    GatewayStats,
    privileged_intent_flags,
)
from .guilds import _UNSET, GuildService, RoleAssigner, default_role_assignment
from .interactions import BUTTON, InteractionClock, InteractionRecord, InteractionService
from .messages import MessageService, MessageStats
from .ratelimit import (
    DEFAULT_RULES,
    INTERACTION_RULES,
    OldMessageEdits,
    RateLimiter,
    RateLimitHit,
    RateLimitRule,
)
from .rest import (
    API_PREFIX,
    CLOUDFLARE_429,
    GLOBAL_429,
    MESSAGE_EDIT,
    MESSAGE_SEND,
    SERVER_ERROR,
    RestApi,
    RestStats,
    UnimplementedCall,
)
from .snowflake import SnowflakeFactory
from .state import GuildState, MemberState, RoleState, StoredMessage, UserState, World

GATEWAY_PATH = "/gateway/"
RESUME_GATEWAY_PATH = "/resume-gateway/"
PAST_AN_HOUR = timedelta(hours=1, minutes=1)


@dataclass(frozen=True, slots=True)
class Counters:
    """A snapshot of what the bot did against the emulator."""

    messages_sent: int
    message_edits: int
    messages_deleted: int
    rate_limited: int
    unimplemented_calls: int
    identifies: int
    resumes: int
    member_requests: int
    chunks_sent: int


class LoopbackDiscord:
    def __init__(
        self,
        *,
        token: str = "loopback-bot-token",
        bot_name: str = "GuildSync",
        privileged_intents: int = GUILD_MEMBERS | MESSAGE_CONTENT,
        heartbeat_interval_ms: int = 41_250,
        rate_limits: Mapping[str, RateLimitRule] = DEFAULT_RULES,
        advertise_rate_limits: bool = True,
        interaction_deadline: float = 3.0,
        session_expiry_s: float | None = None,
        member_request_window_s: float | None = None,
        chunk_interval_s: float = 0.0,
        guild_create_delay_s: float = 0.0,
        heartbeat_timeout_multiple: float | None = None,
        interaction_clock: InteractionClock | None = None,
    ) -> None:
        """The gateway's faults are off by default; each keyword switches one on from the start
        (the methods under "the gateway's connections" switch them at any time):
        `session_expiry_s` (a session cannot resume once its socket has been gone this long),
        `member_request_window_s` (RATE_LIMITED for a second request for all of a guild's
        members within this window; Discord's is 30 s), `chunk_interval_s` (seconds between
        member chunks), `guild_create_delay_s` (GUILD_CREATEs this long after READY),
        `heartbeat_timeout_multiple` (close 4009 a connection silent for this many heartbeat
        intervals). `interaction_clock` times the 3 s callback deadline and the 15 minute
        interaction tokens (`interaction_clock.advance(...)` expires them at once)."""
        self._snowflakes = SnowflakeFactory()
        application_id = self._snowflakes.next()
        bot_user = UserState(application_id, bot_name, None, bot=True)
        owner = UserState(self._snowflakes.next(), "guild.owner", "Guild Owner")
        self.world = World(
            token=token,
            application_id=application_id,
            application_name=bot_name,
            application_flags=privileged_intent_flags(privileged_intents),
            bot_user=bot_user,
            owner=owner,
            users={bot_user.id: bot_user, owner.id: owner},
        )
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self.gateway = Gateway(
            self.world,
            heartbeat_interval_ms=heartbeat_interval_ms,
            resume_url=lambda: self.resume_gateway_url,
            on_change=self._notify,
            session_expiry_s=session_expiry_s,
            member_request_window_s=member_request_window_s,
            chunk_interval_s=chunk_interval_s,
            guild_create_delay_s=guild_create_delay_s,
            heartbeat_timeout_multiple=heartbeat_timeout_multiple,
        )
        self.ratelimiter = RateLimiter(rules=dict(rate_limits), advertise=advertise_rate_limits)
        self.guilds = GuildService(self.world, self.gateway, self._snowflakes, self._notify)
        self.messages = MessageService(self.world, self.gateway, self._snowflakes, self._notify)
        self.app_commands = ApplicationCommands(self.world, self._snowflakes, self._notify)
        self.interactions = InteractionService(
            self.world,
            self.gateway,
            self.messages,
            self._snowflakes,
            callback_deadline=interaction_deadline,
            on_change=self._notify,
            commands=self.app_commands,
            clock=interaction_clock,
        )
        self.rest = RestApi(
            self.world,
            self.guilds,
            self.messages,
            self.interactions,
            self.ratelimiter,
            gateway_url=lambda: self.gateway_url,
            commands=self.app_commands,
        )
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(GATEWAY_PATH, self.gateway.handle)
        app.router.add_get(RESUME_GATEWAY_PATH, self.gateway.handle)
        self.rest.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # set by a started TCPSite
        self._port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("LoopbackDiscord is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + GATEWAY_PATH

    @property
    def resume_gateway_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + RESUME_GATEWAY_PATH

    @property
    def token(self) -> str:
        return self.world.token

    @property
    def bot_user(self) -> UserState:
        return self.world.bot_user

    def __repr__(self) -> str:
        return f"<LoopbackDiscord port={self._port} guilds={len(self.world.guilds)}>"

    # -- building the world -----------------------------------------------------------------

    def create_guild(
        self,
        name: str = "Loopback Guild",
        *,
        member_count: int = 100,
        role_names: Sequence[str] = ("Members", "Helpers", "Moderators"),
        channel_names: Sequence[str] = ("general", "bot-log"),
        assign_roles: RoleAssigner = default_role_assignment,
        role_permissions: Mapping[str, int] | None = None,
    ) -> GuildState:
        """A guild of `member_count` members (owner and bot included) with synthetic users:
        usernames member000000.., global names, every seventh one nicknamed. The bot is a
        member of every guild created; `role_permissions` sets roles' permissions by name.
        Guilds created before the bot connects reach it at IDENTIFY (no GUILD_CREATE later)."""
        return self.guilds.create_guild(
            name,
            member_count=member_count,
            role_names=role_names,
            channel_names=channel_names,
            assign_roles=assign_roles,
            role_permissions=role_permissions,
        )

    def channel_named(self, guild_id: int, name: str) -> int:
        guild = self.guilds.guild(guild_id)
        return next(c.id for c in guild.channels.values() if c.name == name)

    def role_named(self, guild_id: int, name: str) -> RoleState:
        guild = self.guilds.guild(guild_id)
        return next(r for r in guild.roles.values() if r.name == name)

    # -- changes a guild's people make (each dispatches the matching gateway event) ---------

    def create_role(self, guild_id: int, name: str, **fields: int) -> RoleState:
        return self.guilds.create_role(guild_id, name, **fields)

    def update_role(self, guild_id: int, role_id: int, **fields: object) -> RoleState:
        return self.guilds.update_role(guild_id, role_id, **fields)  # type: ignore[arg-type]

    def delete_role(self, guild_id: int, role_id: int) -> list[int]:
        return self.guilds.delete_role(guild_id, role_id)

    def add_member(
        self,
        guild_id: int,
        username: str,
        *,
        global_name: str | None = None,
        nick: str | None = None,
        roles: Iterable[int] = (),
    ) -> MemberState:
        return self.guilds.add_member(
            guild_id, username=username, global_name=global_name, nick=nick, roles=roles
        )

    def remove_member(self, guild_id: int, user_id: int) -> None:
        self.guilds.remove_member(guild_id, user_id)

    def update_member(
        self,
        guild_id: int,
        user_id: int,
        *,
        nick: str | object | None = _UNSET,
        roles: Iterable[int] | None = None,
    ) -> MemberState:
        return self.guilds.update_member(guild_id, user_id, nick=nick, roles=roles)

    def rename_user(
        self, user_id: int, *, username: str | None = None, global_name: object = _UNSET
    ) -> UserState:
        return self.guilds.rename_user(user_id, username=username, global_name=global_name)

    def hide_from_gateway(self, guild_id: int, user_ids: Iterable[int]) -> None:
        """From the next IDENTIFY or member request on, the gateway leaves these members out of
        GUILD_CREATE (and its member_count) and of member chunks, as if Discord had lost them
        from its member list, while REST (GET /guilds/{id}/members/{user_id}) still answers for
        them: the bot's cache is partial and `guild.chunked` still says it is whole. An empty
        `user_ids` delivers everyone again."""
        guild = self.guilds.guild(guild_id)
        guild.gateway_hidden = set(user_ids)
        unknown_ids = guild.gateway_hidden - guild.members.keys()
        if unknown_ids:
            raise ValueError(f"not members of guild {guild_id}: {sorted(unknown_ids)[:5]}")

    def post_message(self, channel_id: int, author_id: int, content: str) -> StoredMessage:
        """A member writes in a channel (MESSAGE_CREATE with member data, so commands run)."""
        author = self.world.users[author_id]
        return self.messages.create(channel_id, author, {"content": content})

    def delete_message(self, channel_id: int, message_id: int) -> None:
        """A moderator deletes a message (MESSAGE_DELETE); the bot's edits of it then get 404."""
        message = self.world.find_message(channel_id, message_id)
        if message is None:
            raise LookupError(f"no message {message_id} in channel {channel_id}")
        self.messages.delete(message)

    async def click_button(
        self,
        message_id: int,
        custom_id: str,
        *,
        channel_id: int,
        member_id: int,
        within: float = 5.0,
        component_type: int = BUTTON,
    ) -> InteractionRecord:
        """A member clicks a component; returns once the bot has answered the interaction."""
        message = self.world.find_message(channel_id, message_id)
        if message is None:
            raise LookupError(f"no message {message_id} in channel {channel_id}")
        guild = self.guilds.guild(message.guild_id)
        record = self.interactions.click(
            message, guild.members[member_id], custom_id, component_type
        )
        await record.wait_callback(within)
        return record

    # -- application commands -----------------------------------------------------------------

    async def slash_command(
        self,
        channel_id: int,
        member_id: int,
        invocation: str,
        options: Mapping[str, object] | None = None,
        *,
        within: float = 5.0,
    ) -> InteractionRecord:
        """A member runs a slash command in a channel, `invocation` as typed without the slash
        (`"sync users"`) and `options` by name (`{"dry_run": True}`); returns once the bot has
        answered the interaction (its callback: `record.callback`), failing after `within`
        seconds. What it answered: `interaction_messages(record)`, `original_response(record)`.
        Raises `CommandUnavailable` for a command, subcommand or option the bot has not
        registered, and `CommandHidden` when the member may not use it (Discord's client would
        not show it): its `default_member_permissions` and the guild's overwrites decide."""
        found = self.world.find_channel(channel_id)
        if found is None:
            raise LookupError(f"no channel {channel_id}")
        guild, _ = found
        record = self.interactions.invoke(
            channel_id, guild.members[member_id], invocation, options or {}
        )
        await record.wait_callback(within)
        return record

    def registered_commands(self, guild_id: int | None = None) -> list[RegisteredCommand]:
        """The application's commands for a guild (None: its global ones)."""
        return list(self.app_commands.registered.get(guild_id, {}).values())

    def set_command_permissions(
        self, guild_id: int, command_name: str, overwrites: Mapping[int, bool]
    ) -> None:
        """A guild's administrator allows or denies a command (Server Settings → Integrations)
        for roles, members or everyone (the guild's id); this replaces its overwrites there."""
        self.app_commands.permission_overwrites[(guild_id, command_name)] = dict(overwrites)

    def withhold_command_scope(self, guild_id: int, withheld: bool = True) -> None:
        """As if the bot had been invited to the guild without the applications.commands
        scope: registering or reading its guild commands answers 403 Missing Access."""
        if withheld:
            self.app_commands.without_scope.add(guild_id)
        else:
            self.app_commands.without_scope.discard(guild_id)

    @property
    def interaction_clock(self) -> InteractionClock:
        """Times interaction deadlines and tokens; `advance(seconds)` ages every interaction."""
        return self.interactions.clock

    def interaction_messages(self, record: InteractionRecord) -> list[StoredMessage]:
        """The interaction's response message (if any) and then its follow-ups, in order."""
        ids = [record.original_message_id, *record.followup_message_ids]
        found = (self.world.find_message(record.channel_id, i) for i in ids if i is not None)
        return [message for message in found if message is not None]

    def original_response(self, record: InteractionRecord) -> StoredMessage | None:
        """The message the interaction's callback created (type 4 or 5), which a deferred
        response's first follow-up replaces the "thinking" state of."""
        if record.original_message_id is None:
            return None
        return self.world.find_message(record.channel_id, record.original_message_id)

    def interaction_failed(self, record: InteractionRecord) -> bool:
        """Not answered within the deadline (the member saw "The application did not respond")."""
        return self.interactions.failed(record)

    # -- the gateway's connections ------------------------------------------------------------

    def drop_gateway(self, close_code: int | None = None) -> int:
        """Cuts every gateway socket (TCP abort by default) keeping sessions resumable.
        Events dispatched before the client reconnects are replayed on RESUME. A close with
        4007 (invalid seq) or 4009 (session timed out) ends the sessions too, as Discord's
        docs say ("reconnect and start a new session"): the RESUME gets INVALID_SESSION."""
        return self.gateway.drop_connections(close_code)

    def invalidate_sessions(self) -> None:
        self.gateway.invalidate_sessions()

    def expire_sessions_after(self, seconds: float | None) -> None:
        """A session can no longer resume once its socket has been gone `seconds` (0: at once;
        None: never, the default); Discord keeps one "a few minutes"."""
        self.gateway.session_expiry_s = seconds

    def request_reconnect(self) -> int:
        """op 7 RECONNECT on every identified connection; the client resumes. How many."""
        return self.gateway.request_reconnect()

    def enforce_heartbeats(self, multiple: float | None = 1.5) -> None:
        """From now on a connection that sends no heartbeat for `multiple` heartbeat intervals
        is closed with 4009 (its session ends); None stops enforcing."""
        self.gateway.heartbeat_timeout_multiple = multiple
        self.gateway.watch_heartbeats()

    def limit_member_requests(self, window_s: float | None = MEMBER_REQUEST_WINDOW_S) -> None:
        """A request for all of a guild's members within `window_s` of the last one answered
        (counted even before this call) gets RATE_LIMITED and no chunks; None lifts the limit."""
        self.gateway.member_request_window_s = window_s

    def note_member_request(self, guild_id: int) -> None:
        """As if another process of this bot had just asked for all of the guild's members."""
        self.gateway.note_member_request(guild_id)

    def pace_chunks(self, interval_s: float) -> None:
        """Member chunks of later requests go out `interval_s` apart, other dispatches between
        them (0: all at once, the default)."""
        self.gateway.chunk_interval_s = interval_s

    def hold_chunks(self, after: int = 0) -> None:
        """Member chunk deliveries started from now on send `after` more chunks, then wait at
        a gate before each next one until `release_chunks`; `chunks_held` says one waits."""
        self.gateway.chunk_gate.shut_after(after)

    def release_chunks(self) -> None:
        self.gateway.chunk_gate.open()

    @property
    def chunks_held(self) -> bool:
        return self.gateway.chunk_gate.waiting > 0

    def make_guild_unavailable(self, guild_id: int) -> None:
        """An outage (GUILD_DELETE `unavailable: true`), or, before the bot connects, a guild
        READY lists as unavailable with no GUILD_CREATE; no event of the guild is sent until
        `make_guild_available`, which sends GUILD_CREATE with its state then."""
        self.gateway.guild_unavailable(self.guilds.guild(guild_id))

    def make_guild_available(self, guild_id: int) -> None:
        self.gateway.guild_available(self.guilds.guild(guild_id))

    # -- REST faults (each off until switched on; `faults_served` counts what was answered) ---

    def fail_requests(
        self,
        count: int,
        *,
        status: int = 502,
        routes: Collection[str] | None = (MESSAGE_EDIT, MESSAGE_SEND),
    ) -> None:
        """The next `count` requests to `routes` (None: every route) get a 5xx page from
        Discord's edge. discord.py's HTTP client retries 500, 502, 504 and 524, sleeping 1, 3,
        5, 7 and 9 s after its five tries (25 s in all) before it raises DiscordServerError,
        and raises a 503 at once; its webhook client (interaction follow-ups) retries any 5xx."""
        self.rest.faults.add(SERVER_ERROR, count, routes, status=status)

    def rate_limit_globally(
        self, count: int = 1, *, retry_after: float = 1.0, routes: Collection[str] | None = None
    ) -> None:
        """The next `count` bot requests to `routes` (None: any) get a global 429 (`global:
        true`, `X-RateLimit-Global: true`, `X-RateLimit-Scope: global`); interaction endpoints
        are exempt, as on Discord."""
        self.rest.faults.add(GLOBAL_429, count, routes, retry_after=retry_after)

    def ban_by_cloudflare(
        self, count: int = 1, *, retry_after: float = 60.0, routes: Collection[str] | None = None
    ) -> None:
        """The next `count` requests to `routes` (None: any) get a 429 without a `Via` header,
        as Cloudflare answers an IP past Discord's invalid request limit."""
        self.rest.faults.add(CLOUDFLARE_429, count, routes, retry_after=retry_after)

    def clear_rest_faults(self) -> None:
        """Drops the injected faults not yet served (the 30046 and interaction limits stay)."""
        self.rest.faults.clear()

    def backdate_message(
        self, channel_id: int, message_id: int, age: timedelta = PAST_AN_HOUR
    ) -> StoredMessage:
        """The message counts as `age` old from now on, for the limit on old message edits."""
        message = self.world.find_message(channel_id, message_id)
        if message is None:
            raise LookupError(f"no message {message_id} in channel {channel_id}")
        self.messages.backdate(message, age)
        return message

    def limit_old_message_edits(self, allowed: int | None = 0, *, retry_after: float = 1.0) -> None:
        """After `allowed` more edits of messages older than an hour, each one is refused with a
        429 of code 30046, `retry_after` in its body; None switches the limit off."""
        self.ratelimiter.old_message_edits = (
            None if allowed is None else OldMessageEdits(allowed, retry_after)
        )

    def limit_interaction_routes(
        self, rules: Mapping[str, RateLimitRule] | None = INTERACTION_RULES
    ) -> None:
        """Rate limits on an interaction's follow-ups and response edits, per interaction token
        (default: five per five seconds each); None switches them off."""
        for bucket in INTERACTION_RULES:
            self.ratelimiter.rules.pop(bucket, None)
        self.ratelimiter.rules.update(rules or {})

    @property
    def faults_served(self) -> Counter[str]:
        """Injected faults answered so far, by label (`server_error_502`, `global_429`,
        `cloudflare_429`, `old_message_edit_30046`)."""
        return self.rest.faults.served

    # -- reading what happened ----------------------------------------------------------------

    def channel_messages(
        self, channel_id: int, *, include_deleted: bool = True
    ) -> list[StoredMessage]:
        """Every message of a channel in order, each with all of its versions (`.versions`)."""
        found = self.world.find_channel(channel_id)
        if found is None:
            raise LookupError(f"no channel {channel_id}")
        guild, _ = found
        messages = list(guild.messages.get(channel_id, {}).values())
        return [m for m in messages if include_deleted or m.deleted_at is None]

    @property
    def unimplemented_calls(self) -> list[UnimplementedCall]:
        return self.rest.stats.unimplemented_calls

    @property
    def rate_limit_hits(self) -> list[RateLimitHit]:
        return self.ratelimiter.hits

    @property
    def gateway_stats(self) -> GatewayStats:
        return self.gateway.stats

    @property
    def rest_stats(self) -> RestStats:
        return self.rest.stats

    @property
    def message_stats(self) -> MessageStats:
        return self.messages.stats

    def counters(self) -> Counters:
        gateway = self.gateway.stats
        return Counters(
            messages_sent=self.messages.stats.created_by_bot,
            message_edits=self.messages.stats.edits,
            messages_deleted=self.messages.stats.deleted,
            rate_limited=len(self.ratelimiter.hits),
            unimplemented_calls=len(self.rest.stats.unimplemented_calls),
            identifies=gateway.identifies,
            resumes=gateway.resumes,
            member_requests=len(gateway.member_requests),
            chunks_sent=gateway.chunks_sent,
        )

    # -- waiting ------------------------------------------------------------------------------

    async def wait_until(self, condition: Callable[[], bool], within: float = 10.0) -> None:
        """Waits until `condition()` holds; it is re-checked after every change the emulator
        sees (gateway payloads, REST writes), so no polling interval is involved."""
        if condition():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (condition, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, within)
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def wait_for_identify(self, within: float = 10.0) -> None:
        await self.wait_until(lambda: self.gateway.stats.identifies > 0, within)

    async def wait_for_member_request(self, within: float = 10.0) -> None:
        await self.wait_until(lambda: bool(self.gateway.stats.member_requests), within)

    def _notify(self) -> None:
        for condition, future in list(self._waiters):
            if not future.done() and condition():
                future.set_result(None)
