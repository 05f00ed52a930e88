"""The gateway: websocket sessions that identify, resume, heartbeat, chunk members and receive
dispatches in sequence order.

Every dispatch of a session goes through its replay buffer first and then, if a socket is attached,
into that socket's outbound queue, so a dropped connection loses nothing a RESUME cannot replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .state import GuildState, JSONDict, MemberState, World, dumps

log = logging.getLogger(__name__)

GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT

CHUNK_SIZE = 1000
QUERY_LIMIT_MAX = 100

CLOSE_UNKNOWN_OPCODE = 4001
CLOSE_DECODE_ERROR = 4002
CLOSE_NOT_AUTHENTICATED = 4003
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_ALREADY_AUTHENTICATED = 4005
CLOSE_INVALID_INTENTS = 4013
CLOSE_DISALLOWED_INTENTS = 4014


@dataclass(frozen=True, slots=True)
class MemberRequest:
    """One REQUEST_GUILD_MEMBERS (op 8) the client sent."""

    guild_id: int
    query: str | None
    limit: int
    user_ids: tuple[int, ...]
    nonce: str | None
    chunk_count: int


@dataclass
class GatewayStats:
    identifies: int = 0
    resumes: int = 0
    replayed: int = 0
    """Dispatches sent on RESUME: the ones that happened while the client was away."""
    invalid_sessions: int = 0
    heartbeats: int = 0
    chunks_sent: int = 0
    server_closes: list[int] = field(default_factory=list)
    client_closes: list[int] = field(default_factory=list)
    connection_paths: list[str] = field(default_factory=list)
    member_requests: list[MemberRequest] = field(default_factory=list)
    dispatched: Counter[str] = field(default_factory=Counter)


_CLOSE = object()


class Connection:
    """One websocket. A single writer task sends queued frames so that dispatches from any task
    reach the socket in sequence order."""

    def __init__(self, socket: web.WebSocketResponse, request: web.Request) -> None:
        self.socket = socket
        self.path = request.path
        self._transport = request.transport
        self._outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_forever())
        self.session: GatewaySession | None = None
        self.close_code_sent: int | None = None

    def send(self, frame: str) -> None:
        self._outbox.put_nowait(frame)

    def close(self, code: int, reason: str) -> None:
        """Closes after the frames already queued have been written."""
        if self.close_code_sent is None:
            self.close_code_sent = code
        self._outbox.put_nowait((_CLOSE, code, reason))

    def abort(self) -> None:
        """Drops the TCP connection without a close frame, like a network failure."""
        if self._transport is not None:
            self._transport.abort()

    async def stop(self) -> None:
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer

    async def _write_forever(self) -> None:
        while True:
            item = await self._outbox.get()
            if isinstance(item, tuple):
                _, code, reason = item
                await self.socket.close(code=code, message=reason.encode())
                return
            try:
                await self.socket.send_str(item)
            except (ConnectionError, RuntimeError):
                return


class GatewaySession:
    """A session survives its sockets: dispatches are numbered and kept until the client's
    heartbeats acknowledge them, up to a cap past which a RESUME is refused."""

    def __init__(
        self, session_id: str, intents: int, large_threshold: int, replay_cap: int
    ) -> None:
        self.session_id = session_id
        self.intents = intents
        self.large_threshold = large_threshold
        self.sequence = 0
        self.connection: Connection | None = None
        self._replay: deque[tuple[int, str]] = deque()
        self._replay_cap = replay_cap
        self._dropped_through = 0

    def wants(self, intent: int | None) -> bool:
        return intent is None or bool(self.intents & intent)

    def dispatch(self, event: str, data_json: str) -> None:
        self.sequence += 1
        frame = f'{{"op":0,"s":{self.sequence},"t":"{event}","d":{data_json}}}'
        self._replay.append((self.sequence, frame))
        if len(self._replay) > self._replay_cap:
            self._dropped_through = self._replay.popleft()[0]
        if self.connection is not None:
            self.connection.send(frame)

    def acknowledge(self, sequence: int | None) -> None:
        if sequence is None:
            return
        while self._replay and self._replay[0][0] <= sequence:
            self._dropped_through = self._replay.popleft()[0]

    def frames_after(self, sequence: int | None) -> list[str] | None:
        """The frames a resuming client missed, or None when some were already discarded."""
        since = sequence or 0
        if since < self._dropped_through or since > self.sequence:
            return None
        return [frame for seq, frame in self._replay if seq > since]


class Gateway:
    def __init__(
        self,
        world: World,
        *,
        heartbeat_interval_ms: int,
        resume_url: Callable[[], str],
        on_change: Callable[[], None],
        replay_cap: int = 10_000,
    ) -> None:
        self._world = world
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self._resume_url = resume_url
        self._on_change = on_change
        self._replay_cap = replay_cap
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: set[Connection] = set()
        self.stats = GatewayStats()

    # -- dispatching -------------------------------------------------------------------------

    def dispatch(
        self,
        event: str,
        payload: JSONDict,
        *,
        intent: int | None,
        without_message_content: JSONDict | None = None,
    ) -> None:
        """Sends an event to every session whose intents ask for it; sessions lacking
        MESSAGE_CONTENT get `without_message_content` instead when it is given."""
        data_json = dumps(payload)
        redacted_json = None if without_message_content is None else dumps(without_message_content)
        for session in self.sessions.values():
            if not session.wants(intent):
                continue
            if redacted_json is not None and not session.intents & MESSAGE_CONTENT:
                session.dispatch(event, redacted_json)
            else:
                session.dispatch(event, data_json)
            self.stats.dispatched[event] += 1

    def drop_connections(self, close_code: int | None = None) -> int:
        """Ends every live socket (abruptly when close_code is None) while keeping the sessions
        resumable; events dispatched afterwards wait in the replay buffers."""
        dropped = 0
        for connection in list(self.connections):
            if connection.session is not None and connection.session.connection is connection:
                connection.session.connection = None
            if close_code is None:
                connection.abort()
            else:
                connection.close(close_code, "Dropped by the loopback Discord.")
            dropped += 1
        return dropped

    def invalidate_sessions(self) -> None:
        """Makes every later RESUME fail with INVALID_SESSION, as after a long outage."""
        self.sessions.clear()

    async def close(self) -> None:
        for connection in list(self.connections):
            connection.close(1001, "Loopback Discord shutting down.")
        for connection in list(self.connections):
            await connection.stop()

    # -- websocket handling ------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await socket.prepare(request)
        connection = Connection(socket, request)
        self.connections.add(connection)
        self.stats.connection_paths.append(request.path)
        hello = {"op": 10, "d": {"heartbeat_interval": self._heartbeat_interval_ms}}
        connection.send(dumps(hello))
        self._on_change()
        try:
            async for message in socket:
                if message.type is not WSMsgType.TEXT:
                    continue
                try:
                    payload = json.loads(message.data)
                except ValueError:
                    connection.close(CLOSE_DECODE_ERROR, "Error while decoding payload.")
                    continue
                self._receive(connection, payload)
        finally:
            self._forget(connection)
            await connection.stop()
            self._on_change()
        return socket

    def _forget(self, connection: Connection) -> None:
        self.connections.discard(connection)
        close_code = connection.socket.close_code
        if connection.close_code_sent is not None:
            self.stats.server_closes.append(connection.close_code_sent)
        elif close_code is not None:
            self.stats.client_closes.append(int(close_code))
        session = connection.session
        if session is None or session.connection is not connection:
            return
        session.connection = None
        if close_code in (1000, 1001):
            # A clean close by the client ends the session, as it does on Discord.
            self.sessions.pop(session.session_id, None)

    def _receive(self, connection: Connection, payload: JSONDict) -> None:
        op = payload.get("op")
        data = payload.get("d")
        if op == 1:
            self.stats.heartbeats += 1
            if connection.session is not None:
                connection.session.acknowledge(data)
            connection.send('{"op":11}')
        elif op == 2:
            self._identify(connection, data or {})
        elif op == 6:
            self._resume(connection, data or {})
        elif connection.session is None:
            connection.close(CLOSE_NOT_AUTHENTICATED, "Not authenticated.")
        elif op == 8:
            self._request_members(connection.session, data or {})
        elif op in (3, 4):
            return  # presence and voice state updates change nothing the emulator models
        else:
            connection.close(CLOSE_UNKNOWN_OPCODE, "Unknown opcode.")
        self._on_change()

    def _identify(self, connection: Connection, data: JSONDict) -> None:
        world = self._world
        if connection.session is not None:
            connection.close(CLOSE_ALREADY_AUTHENTICATED, "Already authenticated.")
            return
        if data.get("token") != world.token:
            connection.close(CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0:
            connection.close(CLOSE_INVALID_INTENTS, "Invalid intent(s).")
            return
        enabled = _enabled_privileged_intents(world.application_flags)
        if intents & PRIVILEGED_INTENTS & ~enabled:
            connection.close(CLOSE_DISALLOWED_INTENTS, "Disallowed intent(s).")
            return
        self.stats.identifies += 1
        session = GatewaySession(
            secrets.token_hex(16), intents, int(data.get("large_threshold", 50)), self._replay_cap
        )
        guilds = _shard_guilds(world, data.get("shard"))
        session.connection = connection
        connection.session = session
        session.dispatch("READY", dumps(self._ready_payload(session, guilds)))
        for guild in guilds:
            create = guild.to_create_json(
                large_threshold=session.large_threshold, bot_user_id=world.bot_user.id
            )
            session.dispatch("GUILD_CREATE", dumps(create))
        self.sessions[session.session_id] = session

    def _ready_payload(self, session: GatewaySession, guilds: list[GuildState]) -> JSONDict:
        world = self._world
        user = world.bot_user.to_json() | {"verified": True, "mfa_enabled": False, "flags": 0}
        return {
            "v": 10,
            "user": user,
            "guilds": [{"id": str(guild.id), "unavailable": True} for guild in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self._resume_url(),
            "application": {"id": str(world.application_id), "flags": world.application_flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
        }

    def _resume(self, connection: Connection, data: JSONDict) -> None:
        if data.get("token") != self._world.token:
            connection.close(CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")
            return
        session = self.sessions.get(str(data.get("session_id")))
        frames = None if session is None else session.frames_after(data.get("seq"))
        if session is None or frames is None:
            self.stats.invalid_sessions += 1
            connection.send('{"op":9,"d":false}')
            return
        self.stats.resumes += 1
        previous = session.connection
        if previous is not None and previous is not connection:
            previous.session = None
            previous.abort()
        for frame in frames:
            connection.send(frame)
        self.stats.replayed += len(frames)
        session.connection = connection
        connection.session = session
        session.dispatch("RESUMED", "{}")

    def _request_members(self, session: GatewaySession, data: JSONDict) -> None:
        guild = self._world.guilds.get(int(data.get("guild_id", 0)))
        if guild is None:
            return
        query = data.get("query")
        limit = int(data.get("limit") or 0)
        user_ids = tuple(int(user_id) for user_id in data.get("user_ids") or ())
        nonce = data.get("nonce")
        members, not_found = _select_members(guild, query, limit, user_ids)
        chunk_count = max(1, -(-len(members) // CHUNK_SIZE))
        self.stats.member_requests.append(
            MemberRequest(guild.id, query, limit, user_ids, nonce, chunk_count)
        )
        tail = f',"chunk_count":{chunk_count}'
        if nonce is not None:
            tail += f',"nonce":{dumps(nonce)}'
        for index in range(chunk_count):
            batch = members[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE]
            body = ",".join(member.json() for member in batch)
            extra = f',"not_found":{dumps(not_found)}' if not_found and index == 0 else ""
            data_json = (
                f'{{"guild_id":"{guild.id}","members":[{body}],"chunk_index":{index}{tail}{extra}}}'
            )
            session.dispatch("GUILD_MEMBERS_CHUNK", data_json)
            self.stats.chunks_sent += 1
        self.stats.dispatched["GUILD_MEMBERS_CHUNK"] += chunk_count


def _enabled_privileged_intents(application_flags: int) -> int:
    """Application flags GATEWAY_PRESENCE(_LIMITED), GATEWAY_GUILD_MEMBERS(_LIMITED) and
    GATEWAY_MESSAGE_CONTENT(_LIMITED) are what the developer portal toggles set."""
    enabled = 0
    if application_flags & (1 << 12 | 1 << 13):
        enabled |= GUILD_PRESENCES
    if application_flags & (1 << 14 | 1 << 15):
        enabled |= GUILD_MEMBERS
    if application_flags & (1 << 18 | 1 << 19):
        enabled |= MESSAGE_CONTENT
    return enabled


def privileged_intent_flags(intents: int) -> int:
    """The application flags that enable the given privileged intents."""
    flags = 0
    if intents & GUILD_PRESENCES:
        flags |= 1 << 12
    if intents & GUILD_MEMBERS:
        flags |= 1 << 14
    if intents & MESSAGE_CONTENT:
        flags |= 1 << 18
    return flags


def _shard_guilds(world: World, shard: Any) -> list[GuildState]:
    guilds = list(world.guilds.values())
    if not shard:
        return guilds
    shard_id, shard_count = int(shard[0]), int(shard[1])
    return [guild for guild in guilds if (guild.id >> 22) % shard_count == shard_id]


def _select_members(
    guild: GuildState, query: str | None, limit: int, user_ids: tuple[int, ...]
) -> tuple[list[MemberState], list[str]]:
    delivered = guild.gateway_members()
    if user_ids:
        by_id = {member.id: member for member in delivered}
        found = [by_id[uid] for uid in user_ids if uid in by_id]
        missing = [str(uid) for uid in user_ids if uid not in by_id]
        return found, missing
    if not query:
        return (delivered[:limit] if limit else delivered), []
    prefix = query.casefold()
    cap = min(limit or QUERY_LIMIT_MAX, QUERY_LIMIT_MAX)
    matches = [
        member
        for member in delivered
        if member.user.username.casefold().startswith(prefix)
        or (member.nick or "").casefold().startswith(prefix)
    ]
    return matches[:cap], []
