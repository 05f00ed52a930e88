"""REST routes under /api/v10 for the calls discord.py makes, with Discord's status codes,
JSON errors and rate limit headers. Anything else answers 404 and is recorded, so tests can
assert the bot never relied on a route the emulator does not model.

`RestFaults` holds the faults a test injects for the next N requests of chosen routes: 5xx
answers from Discord's edge (502, 503, ...), global 429s, and 429s without a `Via` header (a
Cloudflare ban). Each one served is counted in `RestFaults.served`."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

from aiohttp import web

from .app_commands import ApplicationCommands
from .errors import (
    UNKNOWN_CHANNEL,
    UNKNOWN_MESSAGE,
    UNKNOWN_USER,
    ApiError,
    unknown,
)
from .guilds import GuildService
from .interactions import InteractionService
from .messages import EDIT_OTHERS_MESSAGE, UPLOADED_FILES, MessageService
from .ratelimit import (
    GLOBAL_BUCKET,
    OLD_MESSAGE_AGE_S,
    RateLimitDecision,
    RateLimiter,
    global_rate_limit,
)
from .state import JSONDict, StoredMessage, World, dumps

API_PREFIX = "/api/v10"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MESSAGE_SEND = "message_send"
MESSAGE_EDIT = "message_edit"
INTERACTION_CALLBACK = "interaction_callback"
WEBHOOK_SEND = "webhook_send"
WEBHOOK_EDIT = "webhook_edit"
"""Route names faults are aimed at (the rate limiter's buckets use the same names); every other
route is named after its handler (`get_member`, `add_member_role`, ...)."""

SERVER_ERROR = "server_error"
GLOBAL_429 = "global_429"
CLOUDFLARE_429 = "cloudflare_429"
OLD_MESSAGE_EDIT_30046 = "old_message_edit_30046"
CLOUDFLARE_BAN_MESSAGE = (
    "You are being blocked from accessing our API temporarily due to exceeding our rate limits "
    "frequently. Please read our docs at https://discord.com/developers/docs/topics/rate-limits "
    "to prevent this moving forward."
)
SERVER_ERROR_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class InjectedFault:
    kind: str
    remaining: int
    routes: frozenset[str] | None
    """The routes it hits (None: every route it can)."""
    status: int = 0
    retry_after: float = 0.0

    @property
    def label(self) -> str:
        return f"{SERVER_ERROR}_{self.status}" if self.kind == SERVER_ERROR else self.kind


@dataclass
class RestFaults:
    pending: list[InjectedFault] = field(default_factory=list)
    served: Counter[str] = field(default_factory=Counter)
    """Faults answered, by label: `server_error_502`, `global_429`, `cloudflare_429`,
    `old_message_edit_30046`."""

    def add(
        self,
        kind: str,
        count: int,
        routes: Collection[str] | None,
        *,
        status: int = 0,
        retry_after: float = 0.0,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        chosen = None if routes is None else frozenset(routes)
        self.pending.append(InjectedFault(kind, count, chosen, status, retry_after))

    def clear(self) -> None:
        self.pending.clear()

    def take(self, kind: str, route: str) -> InjectedFault | None:
        """The first pending fault of `kind` aimed at `route`, spending one of its requests."""
        for fault in self.pending:
            if fault.kind == kind and (fault.routes is None or route in fault.routes):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.pending.remove(fault)
                self.served[fault.label] += 1
                return fault
        return None


@dataclass(frozen=True, slots=True)
class UnimplementedCall:
    method: str
    path: str


@dataclass
class RestStats:
    calls: Counter[str] = field(default_factory=Counter)
    unimplemented_calls: list[UnimplementedCall] = field(default_factory=list)
    unauthorized: int = 0


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None):
    """discord.py parses bodies only when Content-Type is exactly application/json."""
    return web.Response(
        body=dumps(body).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


class RestApi:
    def __init__(
        self,
        world: World,
        guilds: GuildService,
        messages: MessageService,
        interactions: InteractionService,
        limiter: RateLimiter,
        gateway_url: Callable[[], str],
        commands: ApplicationCommands,
    ) -> None:
        self._world = world
        self._guilds = guilds
        self._messages = messages
        self._interactions = interactions
        self._commands = commands
        self._limiter = limiter
        self._gateway_url = gateway_url
        self.stats = RestStats()
        self.faults = RestFaults()

    def add_routes(self, app: web.Application) -> None:
        named = {
            self.create_message: MESSAGE_SEND,
            self.edit_message: MESSAGE_EDIT,
            self.callback: INTERACTION_CALLBACK,
            self.create_followup: WEBHOOK_SEND,
            self.edit_webhook_message: WEBHOOK_EDIT,
        }
        bot_routes: list[tuple[str, str, Handler]] = [
            ("GET", "/users/@me", self.get_me),
            ("GET", "/users/{user_id:\\d+}", self.get_user),
            ("GET", "/oauth2/applications/@me", self.get_application),
            ("GET", "/gateway", self.get_gateway),
            ("GET", "/gateway/bot", self.get_gateway_bot),
            ("GET", "/channels/{channel_id:\\d+}", self.get_channel),
            ("POST", "/channels/{channel_id:\\d+}/typing", self.trigger_typing),
            ("GET", "/channels/{channel_id:\\d+}/messages", self.list_messages),
            ("POST", "/channels/{channel_id:\\d+}/messages", self.create_message),
            ("GET", "/channels/{channel_id:\\d+}/messages/{message_id:\\d+}", self.get_message),
            ("PATCH", "/channels/{channel_id:\\d+}/messages/{message_id:\\d+}", self.edit_message),
            (
                "DELETE",
                "/channels/{channel_id:\\d+}/messages/{message_id:\\d+}",
                self.delete_message,
            ),
            ("GET", "/guilds/{guild_id:\\d+}", self.get_guild),
            ("GET", "/guilds/{guild_id:\\d+}/roles", self.get_roles),
            ("GET", "/guilds/{guild_id:\\d+}/members/{user_id:\\d+}", self.get_member),
            (
                "PUT",
                "/guilds/{guild_id:\\d+}/members/{user_id:\\d+}/roles/{role_id:\\d+}",
                self.add_member_role,
            ),
            (
                "DELETE",
                "/guilds/{guild_id:\\d+}/members/{user_id:\\d+}/roles/{role_id:\\d+}",
                self.remove_member_role,
            ),
            ("GET", "/applications/{application_id:\\d+}/commands", self.get_commands),
            ("PUT", "/applications/{application_id:\\d+}/commands", self.put_commands),
            (
                "GET",
                "/applications/{application_id:\\d+}/guilds/{guild_id:\\d+}/commands",
                self.get_commands,
            ),
            (
                "PUT",
                "/applications/{application_id:\\d+}/guilds/{guild_id:\\d+}/commands",
                self.put_commands,
            ),
        ]
        webhook = "/webhooks/{application_id:\\d+}/{token}"
        webhook_routes: list[tuple[str, str, Handler]] = [
            ("POST", "/interactions/{interaction_id:\\d+}/{token}/callback", self.callback),
            ("POST", webhook, self.create_followup),
            ("GET", webhook + "/messages/{message_id}", self.get_webhook_message),
            ("PATCH", webhook + "/messages/{message_id}", self.edit_webhook_message),
            ("DELETE", webhook + "/messages/{message_id}", self.delete_webhook_message),
        ]
        for routes, bot in ((bot_routes, True), (webhook_routes, False)):
            for method, path, handler in routes:
                name = named.get(handler, handler.__name__)
                guarded = self._guarded(handler, name, bot=bot)
                app.router.add_route(method, API_PREFIX + path, guarded)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self.unimplemented)

    def _guarded(self, handler: Handler, name: str, *, bot: bool) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            route = request.match_info.route.resource
            self.stats.calls[f"{request.method} {route.canonical if route else request.path}"] += 1
            edge = self._edge_fault(name)
            if edge is not None:
                return edge
            if bot and request.headers.get("Authorization") != f"Bot {self._world.token}":
                self.stats.unauthorized += 1
                return json_response({"message": "401: Unauthorized", "code": 0}, 401)
            # Interaction endpoints are not bound to the bot's global rate limit (Discord's docs).
            if bot and (fault := self.faults.take(GLOBAL_429, name)) is not None:
                decision = global_rate_limit(fault.retry_after)
                self._limiter.record(GLOBAL_BUCKET, 0, decision)
                return _too_many(decision)
            try:
                return await handler(request)
            except ApiError as error:
                return json_response(error.body(), error.status)

        return guarded

    def _edge_fault(self, name: str) -> web.Response | None:
        """What Discord's edge answers before the API sees the request: a Cloudflare ban (429
        without `Via`, which discord.py raises at once as HTTPException), or a 5xx page."""
        ban = self.faults.take(CLOUDFLARE_429, name)
        if ban is not None:
            headers = {"Retry-After": str(max(1, round(ban.retry_after)))}
            return json_response({"message": CLOUDFLARE_BAN_MESSAGE, "code": 0}, 429, headers)
        failure = self.faults.take(SERVER_ERROR, name)
        if failure is not None:
            reason = SERVER_ERROR_REASONS.get(failure.status, "Server Error")
            title = f"{failure.status} {reason}"
            return web.Response(
                text=f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>",
                status=failure.status,
                content_type="text/html",
            )
        return None

    async def unimplemented(self, request: web.Request) -> web.Response:
        self.stats.unimplemented_calls.append(UnimplementedCall(request.method, request.path))
        return json_response({"message": "404: Not Found (loopback Discord)", "code": 0}, 404)

    # -- identity ---------------------------------------------------------------------------

    async def get_me(self, request: web.Request) -> web.Response:
        user = self._world.bot_user.to_json() | {"verified": True, "mfa_enabled": False}
        return json_response(user | {"flags": 0, "locale": "en-US"})

    async def get_user(self, request: web.Request) -> web.Response:
        user = self._world.users.get(int(request.match_info["user_id"]))
        if user is None:
            raise unknown("User", UNKNOWN_USER)
        return json_response(user.to_json())

    async def get_application(self, request: web.Request) -> web.Response:
        world = self._world
        return json_response(
            {
                "id": str(world.application_id),
                "name": world.application_name,
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": world.owner.to_json(),
                "verify_key": "0" * 64,
                "flags": world.application_flags,
                "team": None,
                "summary": "",
                "bot": world.bot_user.to_json(),
            }
        )

    async def get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self._gateway_url()})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        url = self._gateway_url()
        return json_response({"url": url, "shards": 1, "session_start_limit": limit})

    # -- channels and messages --------------------------------------------------------------

    async def get_channel(self, request: web.Request) -> web.Response:
        _, channel = self._channel(request)
        return json_response(channel.to_json())

    async def trigger_typing(self, request: web.Request) -> web.Response:
        self._channel(request)
        return web.Response(status=204)

    async def list_messages(self, request: web.Request) -> web.Response:
        guild, channel = self._channel(request)
        limit = min(max(int(request.query.get("limit", 50)), 1), 100)
        before = int(request.query.get("before", 0)) or None
        after = int(request.query.get("after", 0)) or None
        live = [m for m in guild.messages.get(channel.id, {}).values() if m.deleted_at is None]
        if after is not None:
            chosen = [m for m in live if m.id > after][:limit]
        else:
            chosen = [m for m in live if before is None or m.id < before][-limit:]
        return json_response([message.to_json() for message in reversed(chosen)])

    async def create_message(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        decision = self._limiter.hit(MESSAGE_SEND, channel_id)
        if not decision.allowed:
            return _too_many(decision)
        body = await _read_body(request)
        message = self._messages.create(channel_id, self._world.bot_user, body)
        return json_response(message.to_json(), headers=decision.headers)

    async def get_message(self, request: web.Request) -> web.Response:
        return json_response(self._message(request).to_json())

    async def edit_message(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        decision = self._limiter.hit(MESSAGE_EDIT, channel_id)
        if not decision.allowed:
            return _too_many(decision)
        message = self._message(request)
        if message.author is not self._world.bot_user:
            raise ApiError(
                403, EDIT_OTHERS_MESSAGE, "Cannot edit a message authored by another user"
            )
        if self._messages.age_s(message) > OLD_MESSAGE_AGE_S:
            old = self._limiter.old_message_edit(channel_id)
            if not old.allowed:
                self.faults.served[OLD_MESSAGE_EDIT_30046] += 1
                return _too_many(old)
        self._messages.edit(message, await _read_body(request))
        return json_response(message.to_json(), headers=decision.headers)

    async def delete_message(self, request: web.Request) -> web.Response:
        self._messages.delete(self._message(request))
        return web.Response(status=204)

    def _channel(self, request: web.Request):
        found = self._world.find_channel(int(request.match_info["channel_id"]))
        if found is None:
            raise unknown("Channel", UNKNOWN_CHANNEL)
        return found

    def _message(self, request: web.Request) -> StoredMessage:
        self._channel(request)
        message = self._world.find_message(
            int(request.match_info["channel_id"]), int(request.match_info["message_id"])
        )
        if message is None:
            raise unknown("Message", UNKNOWN_MESSAGE)
        return message

    # -- guilds -----------------------------------------------------------------------------

    async def get_guild(self, request: web.Request) -> web.Response:
        guild = self._guilds.guild(int(request.match_info["guild_id"]))
        payload = guild.to_create_json(large_threshold=0, bot_user_id=0)
        for live_only in ("members", "channels", "threads", "presences", "voice_states"):
            del payload[live_only]
        return json_response(payload)

    async def get_roles(self, request: web.Request) -> web.Response:
        guild = self._guilds.guild(int(request.match_info["guild_id"]))
        return json_response([role.to_json() for role in guild.roles.values()])

    async def get_member(self, request: web.Request) -> web.Response:
        member = self._guilds.member(
            int(request.match_info["guild_id"]), int(request.match_info["user_id"])
        )
        return json_response(member.to_json())

    async def add_member_role(self, request: web.Request) -> web.Response:
        return self._change_member_role(request, add=True)

    async def remove_member_role(self, request: web.Request) -> web.Response:
        return self._change_member_role(request, add=False)

    def _change_member_role(self, request: web.Request, *, add: bool) -> web.Response:
        guild_id = int(request.match_info["guild_id"])
        user_id = int(request.match_info["user_id"])
        role_id = int(request.match_info["role_id"])
        member = self._guilds.member(guild_id, user_id)
        roles = [r for r in member.roles if r != role_id] + ([role_id] if add else [])
        if list(member.roles) != roles:
            self._guilds.update_member(guild_id, user_id, roles=roles)
        return web.Response(status=204)

    # -- application commands ---------------------------------------------------------------

    @staticmethod
    def _command_scope(request: web.Request) -> tuple[int, int | None]:
        guild_id = request.match_info.get("guild_id")
        return int(request.match_info["application_id"]), None if guild_id is None else int(
            guild_id
        )

    async def get_commands(self, request: web.Request) -> web.Response:
        """GET /applications/{app}/[guilds/{guild}/]commands: what the application registered."""
        return json_response(self._commands.list(*self._command_scope(request)))

    async def put_commands(self, request: web.Request) -> web.Response:
        """PUT (bulk overwrite): the list replaces every command of the scope, answered with the
        commands as stored (ids, versions)."""
        try:
            body = await request.json()
        except ValueError as error:
            raise ApiError(400, 50109, "The request body contains invalid JSON.") from error
        return json_response(self._commands.bulk_overwrite(*self._command_scope(request), body))

    # -- interactions -----------------------------------------------------------------------

    async def callback(self, request: web.Request) -> web.Response:
        response = self._interactions.respond(
            int(request.match_info["interaction_id"]),
            request.match_info["token"],
            await _read_body(request),
        )
        if request.query.get("with_response") in ("1", "true", "True"):
            return json_response(response)
        return web.Response(status=204)

    async def create_followup(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        decision = self._limiter.hit(WEBHOOK_SEND, record.id)
        if not decision.allowed:
            return _too_many(decision)
        message = self._interactions.followup(record, await _read_body(request))
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(message.to_json(), headers=decision.headers)
        return web.Response(status=204, headers=decision.headers)

    async def get_webhook_message(self, request: web.Request) -> web.Response:
        return json_response(self._webhook_message(request).to_json())

    async def edit_webhook_message(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        decision = self._limiter.hit(WEBHOOK_EDIT, record.id)
        if not decision.allowed:
            return _too_many(decision)
        message = self._webhook_message(request)
        self._messages.edit(message, await _read_body(request))
        return json_response(message.to_json(), headers=decision.headers)

    async def delete_webhook_message(self, request: web.Request) -> web.Response:
        self._messages.delete(self._webhook_message(request))
        return web.Response(status=204)

    def _webhook_record(self, request: web.Request):
        return self._interactions.by_webhook(
            int(request.match_info["application_id"]), request.match_info["token"]
        )

    def _webhook_message(self, request: web.Request) -> StoredMessage:
        record = self._webhook_record(request)
        message_id = request.match_info["message_id"]
        if message_id == "@original":
            return self._interactions.original_message(record)
        if not message_id.isdigit():
            raise unknown("Message", UNKNOWN_MESSAGE)
        return self._interactions.interaction_message(record, int(message_id))


def _too_many(decision: RateLimitDecision) -> web.Response:
    return json_response(decision.error_body(), 429, decision.headers)


async def _read_body(request: web.Request) -> JSONDict:
    """JSON bodies, or the payload_json part of the multipart form discord.py sends with files,
    the files kept under UPLOADED_FILES."""
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        raw = form.get("payload_json")
        body = json.loads(raw) if isinstance(raw, str) else {}
        files = [
            (part.filename, part.file.read())
            for part in form.values()
            if isinstance(part, web.FileField)
        ]
        return body | {UPLOADED_FILES: files} if files else body
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError as error:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from error
    if not isinstance(body, dict):
        raise ApiError(400, 50035, "Invalid Form Body")
    return body
