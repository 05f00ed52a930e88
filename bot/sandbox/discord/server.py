"""LoopbackDiscord: the emulator's one public object. It binds an aiohttp server on 127.0.0.1,
serves the REST API and the gateway, and gives tests and scenarios the controls of a guild's
members and moderators: change roles and members, post messages, click buttons, drop sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from aiohttp import web

from .gateway import (
    GUILD_MEMBERS,
    MESSAGE_CONTENT,
    Gateway,
    GatewayStats,
    privileged_intent_flags,
)
from .guilds import _UNSET, GuildService, RoleAssigner, default_role_assignment
from .interactions import BUTTON, InteractionRecord, InteractionService
from .messages import MessageService, MessageStats
from .ratelimit import DEFAULT_RULES, RateLimiter, RateLimitHit, RateLimitRule
from .rest import API_PREFIX, RestApi, RestStats, UnimplementedCall
from .snowflake import SnowflakeFactory
from .state import GuildState, MemberState, RoleState, StoredMessage, UserState, World

GATEWAY_PATH = "/gateway/"
RESUME_GATEWAY_PATH = "/resume-gateway/"


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
    ) -> None:
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
        )
        self.ratelimiter = RateLimiter(rules=dict(rate_limits), advertise=advertise_rate_limits)
        self.guilds = GuildService(self.world, self.gateway, self._snowflakes, self._notify)
        self.messages = MessageService(self.world, self.gateway, self._snowflakes, self._notify)
        self.interactions = InteractionService(
            self.world,
            self.gateway,
            self.messages,
            self._snowflakes,
            callback_deadline=interaction_deadline,
            on_change=self._notify,
        )
        self.rest = RestApi(
            self.world,
            self.guilds,
            self.messages,
            self.interactions,
            self.ratelimiter,
            gateway_url=lambda: self.gateway_url,
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

    # -- the gateway's connections ------------------------------------------------------------

    def drop_gateway(self, close_code: int | None = None) -> int:
        """Cuts every gateway socket (TCP abort by default) keeping sessions resumable.
        Events dispatched before the client reconnects are replayed on RESUME."""
        return self.gateway.drop_connections(close_code)

    def invalidate_sessions(self) -> None:
        self.gateway.invalidate_sessions()

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
