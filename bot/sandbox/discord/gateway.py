"""The gateway: websocket sessions that identify, resume, heartbeat, chunk members and receive
dispatches in sequence order.

Every dispatch of a session goes through its replay buffer first and then, if a socket is attached,
into that socket's outbound queue, so a dropped connection loses nothing a RESUME cannot replay.

Faults Discord's gateway has, each off by default (see `Gateway.__init__`; the facade's docstrings
say how a test switches them): sessions ended by a 4007/4009 close or expired after their socket
has been gone too long; RATE_LIMITED for a second request for all of a guild's members within
30 s; member chunks sent at a pace, or held at a gate, between other dispatches; guilds
unavailable at READY (GUILD_CREATE when a test says, or after a delay) and outages
(GUILD_DELETE `unavailable: true`, later GUILD_CREATE); heartbeats enforced; op 7 RECONNECT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine
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
CLOSE_INVALID_SEQ = 4007
CLOSE_SESSION_TIMED_OUT = 4009
CLOSE_INVALID_INTENTS = 4013
CLOSE_DISALLOWED_INTENTS = 4014
SESSION_ENDING_CLOSES = frozenset({CLOSE_INVALID_SEQ, CLOSE_SESSION_TIMED_OUT})
"""Close codes whose documented meaning is "reconnect and start a new session": a RESUME after
one of them is answered INVALID_SESSION (d=false), so the client identifies again."""
MEMBER_REQUEST_WINDOW_S = 30.0
"""Discord's limit since August 2025 on REQUEST_GUILD_MEMBERS for all members (query "" and
limit 0): one request per guild per bot every 30 s; another one gets a RATE_LIMITED dispatch
and no chunks. Requests with a query or user ids are not limited this way."""


@dataclass(frozen=True, slots=True)
class MemberRequest:
    """One REQUEST_GUILD_MEMBERS (op 8) the client sent."""

    guild_id: int
    query: str | None
    limit: int
    user_ids: tuple[int, ...]
    nonce: str | None
    chunk_count: int
    rate_limited: bool = False
    """Answered with RATE_LIMITED instead of chunks (chunk_count is then 0)."""


@dataclass(frozen=True, slots=True)
class RateLimitedRequest:
    """A RATE_LIMITED dispatch the gateway sent for a REQUEST_GUILD_MEMBERS (opcode 8)."""

    guild_id: int
    nonce: str | None
    retry_after: float


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
    rate_limited: list[RateLimitedRequest] = field(default_factory=list)
    """Requests for all of a guild's members refused within the 30 s window, in order."""
    sessions_ended: int = 0
    """Sessions discarded because their connection closed with 4007 or 4009."""
    sessions_expired: int = 0
    """RESUMEs refused because the session had been without a socket past `session_expiry_s`."""
    heartbeat_timeouts: int = 0
    """Connections closed (4009) for missing heartbeats."""
    reconnects_requested: int = 0
    """op 7 RECONNECT frames sent (`request_reconnect`)."""
    withheld: Counter[str] = field(default_factory=Counter)
    """Dispatches not sent because their guild was unavailable, by event name."""


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
        self.last_heartbeat = time.monotonic()
        """When the client last heartbeated (the connection's start counts as one)."""
        self.watchdog: asyncio.Task[None] | None = None

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
        for task in (self._writer, self.watchdog):
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
        self,
        session_id: str,
        intents: int,
        large_threshold: int,
        replay_cap: int,
        guild_ids: frozenset[int] = frozenset(),
    ) -> None:
        self.session_id = session_id
        self.intents = intents
        self.large_threshold = large_threshold
        self.guild_ids = guild_ids
        """The guilds of this session's shard (READY listed them)."""
        self.sequence = 0
        self.connection: Connection | None = None
        self.disconnected_at: float | None = None
        """When the session lost its socket (None while one is attached)."""
        self._replay: deque[tuple[int, str]] = deque()
        self._replay_cap = replay_cap
        self._dropped_through = 0

    def attach(self, connection: Connection) -> None:
        self.connection = connection
        connection.session = self
        self.disconnected_at = None

    def detach(self) -> None:
        self.connection = None
        self.disconnected_at = time.monotonic()

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


class ChunkGate:
    """Holds member chunk deliveries: once `after` more chunks have gone out, every delivery
    waits before its next chunk until the gate opens (`LoopbackDiscord.hold_chunks`)."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self._budget: int | None = None
        self._opened = asyncio.Event()
        self._opened.set()
        self.waiting = 0
        """Deliveries waiting at the shut gate."""

    @property
    def armed(self) -> bool:
        return self._budget is not None

    def shut_after(self, chunks: int) -> None:
        self._budget = max(0, chunks)
        self._opened.clear()

    def open(self) -> None:
        self._budget = None
        self._opened.set()

    async def turn(self) -> None:
        """Wait until this delivery may send its next chunk."""
        if self._budget is None:
            return
        if self._budget > 0:
            self._budget -= 1
            return
        self.waiting += 1
        self._on_change()
        try:
            await self._opened.wait()
        finally:
            self.waiting -= 1


class Gateway:
    def __init__(
        self,
        world: World,
        *,
        heartbeat_interval_ms: int,
        resume_url: Callable[[], str],
        on_change: Callable[[], None],
        replay_cap: int = 10_000,
        session_expiry_s: float | None = None,
        member_request_window_s: float | None = None,
        chunk_interval_s: float = 0.0,
        guild_create_delay_s: float = 0.0,
        heartbeat_timeout_multiple: float | None = None,
    ) -> None:
        self._world = world
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self._resume_url = resume_url
        self._on_change = on_change
        self._replay_cap = replay_cap
        self.session_expiry_s = session_expiry_s
        """A session whose socket has been gone this long cannot be resumed (None: never
        expires). Discord keeps a session "a few minutes" after a close other than 1000/1001."""
        self.member_request_window_s = member_request_window_s
        """RATE_LIMITED for a request for all of a guild's members within this many seconds of
        the last one answered (None: no limit; Discord's is MEMBER_REQUEST_WINDOW_S). Requests
        are timed even while it is None, so switching it on counts the earlier ones."""
        self.chunk_interval_s = chunk_interval_s
        """Seconds between one member chunk and the next; 0 sends them all at once."""
        self.guild_create_delay_s = guild_create_delay_s
        """Seconds between READY and the GUILD_CREATEs that follow it."""
        self.heartbeat_timeout_multiple = heartbeat_timeout_multiple
        """Close (4009) a connection that has not heartbeated for this many heartbeat intervals
        (None: never)."""
        self.chunk_gate = ChunkGate(on_change)
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: set[Connection] = set()
        self.stats = GatewayStats()
        self._all_members_asked_at: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

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
        MESSAGE_CONTENT get `without_message_content` instead when it is given. Nothing is sent
        for a guild that is unavailable (Discord sends no events of a guild in an outage)."""
        guild_id = payload.get("guild_id")
        if guild_id is not None:
            guild = self._world.guilds.get(int(guild_id))
            if guild is not None and guild.unavailable:
                self.stats.withheld[event] += 1
                return
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
        resumable, unless the close code is 4007 or 4009, which end them; events dispatched
        afterwards wait in the replay buffers of the sessions kept."""
        dropped = 0
        for connection in list(self.connections):
            if close_code is None:
                self._detach(connection)
                connection.abort()
            else:
                self._end_connection(connection, close_code, "Dropped by the loopback Discord.")
            dropped += 1
        return dropped

    def invalidate_sessions(self) -> None:
        """Makes every later RESUME fail with INVALID_SESSION, as after a long outage."""
        self.sessions.clear()

    def request_reconnect(self) -> int:
        """Sends op 7 RECONNECT on every identified connection ("reconnect and resume
        immediately"); the session stays resumable. Returns how many were asked."""
        asked = 0
        for connection in list(self.connections):
            if connection.session is not None and connection.close_code_sent is None:
                connection.send('{"op":7,"d":null}')
                asked += 1
        self.stats.reconnects_requested += asked
        self._on_change()
        return asked

    def watch_heartbeats(self) -> None:
        """Starts the heartbeat watchdog of every live connection that has none (the ones that
        connect later get theirs at HELLO while `heartbeat_timeout_multiple` is set)."""
        for connection in self.connections:
            if connection.watchdog is None and self.heartbeat_timeout_multiple is not None:
                connection.watchdog = asyncio.create_task(self._watch_heartbeats(connection))

    def note_member_request(self, guild_id: int) -> None:
        """Counts a request for all of the guild's members now, as another process of this bot
        (same application) would have: Discord's 30 s limit is per guild per bot."""
        self._all_members_asked_at[guild_id] = time.monotonic()

    def guild_unavailable(self, guild: GuildState) -> None:
        """An outage: GUILD_DELETE with `unavailable: true` to every session holding the guild;
        until `guild_available`, no event of the guild is sent, a session identifying meanwhile
        gets no GUILD_CREATE for it and its member requests are not answered."""
        if guild.unavailable:
            return
        guild.unavailable = True
        data_json = dumps({"id": str(guild.id), "unavailable": True})
        for session in self.sessions.values():
            if guild.id in session.guild_ids:
                session.dispatch("GUILD_DELETE", data_json)
                self.stats.dispatched["GUILD_DELETE"] += 1
        self._on_change()

    def guild_available(self, guild: GuildState) -> None:
        """The guild is back (or arrives late after READY): a GUILD_CREATE with its current
        state to every session holding it, as Discord sends when an outage ends."""
        if not guild.unavailable:
            return
        guild.unavailable = False
        for session in self.sessions.values():
            if guild.id in session.guild_ids:
                self._send_guild_create(session, guild)
        self._on_change()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for connection in list(self.connections):
            connection.close(1001, "Loopback Discord shutting down.")
        for connection in list(self.connections):
            await connection.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- websocket handling ------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await socket.prepare(request)
        connection = Connection(socket, request)
        self.connections.add(connection)
        self.stats.connection_paths.append(request.path)
        hello = {"op": 10, "d": {"heartbeat_interval": self._heartbeat_interval_ms}}
        connection.send(dumps(hello))
        self.watch_heartbeats()
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
        session.detach()
        if close_code in (1000, 1001) and connection.close_code_sent is None:
            # A clean close by the client ends the session, as it does on Discord.
            self.sessions.pop(session.session_id, None)

    def _detach(self, connection: Connection) -> None:
        session = connection.session
        if session is not None and session.connection is connection:
            session.detach()

    def _end_connection(self, connection: Connection, code: int, reason: str) -> None:
        """Closes with `code`; a 4007 or 4009 close also ends the connection's session."""
        session = connection.session
        if session is not None and code in SESSION_ENDING_CLOSES:
            ended = self.sessions.pop(session.session_id, None)
            self.stats.sessions_ended += ended is not None
        self._detach(connection)
        connection.close(code, reason)

    async def _watch_heartbeats(self, connection: Connection) -> None:
        while self.heartbeat_timeout_multiple is not None:
            allowed = self._heartbeat_interval_ms / 1000 * self.heartbeat_timeout_multiple
            remaining = connection.last_heartbeat + allowed - time.monotonic()
            if remaining <= 0:
                self.stats.heartbeat_timeouts += 1
                self._end_connection(
                    connection, CLOSE_SESSION_TIMED_OUT, "Session timed out: no heartbeat."
                )
                self._on_change()
                return
            await asyncio.sleep(remaining)  # the emulator's own timer, not a wait for the client
        connection.watchdog = None

    def _receive(self, connection: Connection, payload: JSONDict) -> None:
        op = payload.get("op")
        data = payload.get("d")
        if op == 1:
            self.stats.heartbeats += 1
            connection.last_heartbeat = time.monotonic()
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
        guilds = _shard_guilds(world, data.get("shard"))
        session = GatewaySession(
            secrets.token_hex(16),
            intents,
            int(data.get("large_threshold", 50)),
            self._replay_cap,
            frozenset(guild.id for guild in guilds),
        )
        session.attach(connection)
        session.dispatch("READY", dumps(self._ready_payload(session, guilds)))
        self.sessions[session.session_id] = session
        if self.guild_create_delay_s > 0:
            self._spawn(self._guild_creates_later(session, self.guild_create_delay_s))
            return
        for guild in guilds:
            if not guild.unavailable:
                self._send_guild_create(session, guild)

    async def _guild_creates_later(self, session: GatewaySession, delay: float) -> None:
        await asyncio.sleep(delay)  # the emulator's configured delay, not a wait for the client
        if self.sessions.get(session.session_id) is not session:
            return
        for guild_id in sorted(session.guild_ids):
            guild = self._world.guilds.get(guild_id)
            if guild is not None and not guild.unavailable:
                self._send_guild_create(session, guild)
        self._on_change()

    def _send_guild_create(self, session: GatewaySession, guild: GuildState) -> None:
        create = guild.to_create_json(
            large_threshold=session.large_threshold, bot_user_id=self._world.bot_user.id
        )
        session.dispatch("GUILD_CREATE", dumps(create))
        self.stats.dispatched["GUILD_CREATE"] += 1

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
        if session is not None and self._expired(session):
            del self.sessions[session.session_id]
            self.stats.sessions_expired += 1
            session = None
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
        session.attach(connection)
        session.dispatch("RESUMED", "{}")

    def _expired(self, session: GatewaySession) -> bool:
        expiry, gone_since = self.session_expiry_s, session.disconnected_at
        if expiry is None or gone_since is None:
            return False
        return time.monotonic() - gone_since >= expiry

    def _request_members(self, session: GatewaySession, data: JSONDict) -> None:
        guild = self._world.guilds.get(int(data.get("guild_id", 0)))
        if guild is None or guild.unavailable:
            return
        query = data.get("query")
        limit = int(data.get("limit") or 0)
        user_ids = tuple(int(user_id) for user_id in data.get("user_ids") or ())
        nonce = data.get("nonce")
        if not query and not limit and not user_ids and self._rate_limited(session, guild, nonce):
            self.stats.member_requests.append(
                MemberRequest(guild.id, query, limit, user_ids, nonce, 0, rate_limited=True)
            )
            return
        members, not_found = _select_members(guild, query, limit, user_ids)
        chunk_count = max(1, -(-len(members) // CHUNK_SIZE))
        self.stats.member_requests.append(
            MemberRequest(guild.id, query, limit, user_ids, nonce, chunk_count)
        )
        tail = f',"chunk_count":{chunk_count}'
        if nonce is not None:
            tail += f',"nonce":{dumps(nonce)}'
        if self.chunk_interval_s > 0 or self.chunk_gate.armed:
            ids = [member.id for member in members]
            self._spawn(self._deliver_chunks(session, guild, ids, chunk_count, tail, not_found))
            return
        for index in range(chunk_count):
            batch = members[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE]
            chunk = _chunk_json(guild, batch, index, tail, not_found)
            session.dispatch("GUILD_MEMBERS_CHUNK", chunk)
            self.stats.chunks_sent += 1
        self.stats.dispatched["GUILD_MEMBERS_CHUNK"] += chunk_count

    def _rate_limited(self, session: GatewaySession, guild: GuildState, nonce: Any) -> bool:
        """Discord's limit on requests for all members: within the window of the last answered
        one, a RATE_LIMITED dispatch (opcode 8, `retry_after` in seconds, `meta` naming the guild
        and nonce) instead of chunks. Only answered requests start a window."""
        now = time.monotonic()
        window = self.member_request_window_s
        last = self._all_members_asked_at.get(guild.id)
        if window is not None and last is not None and now - last < window:
            retry_after = round(window - (now - last), 3)
            meta: JSONDict = {"guild_id": str(guild.id)}
            if nonce is not None:
                meta["nonce"] = nonce
            payload = {"opcode": 8, "retry_after": retry_after, "meta": meta}
            session.dispatch("RATE_LIMITED", dumps(payload))
            self.stats.dispatched["RATE_LIMITED"] += 1
            self.stats.rate_limited.append(RateLimitedRequest(guild.id, nonce, retry_after))
            return True
        self._all_members_asked_at[guild.id] = now
        return False

    async def _deliver_chunks(
        self,
        session: GatewaySession,
        guild: GuildState,
        ids: list[int],
        chunk_count: int,
        tail: str,
        not_found: list[str],
    ) -> None:
        """Chunks one at a time, each built when it is sent from the members then still in the
        guild (a member who left since the request is skipped, a changed one sent as they are
        now), so the events dispatched in between (joins, leaves, updates) keep their order
        relative to the chunks, as on one Discord connection."""
        for index in range(chunk_count):
            if index and self.chunk_interval_s > 0:
                await asyncio.sleep(self.chunk_interval_s)  # the configured pace
            await self.chunk_gate.turn()
            if self.sessions.get(session.session_id) is not session or guild.unavailable:
                return  # the session ended (a fresh one asks again) or the guild went away
            hidden = guild.gateway_hidden
            batch = [
                member
                for user_id in ids[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE]
                if (member := guild.members.get(user_id)) is not None and user_id not in hidden
            ]
            chunk = _chunk_json(guild, batch, index, tail, not_found)
            session.dispatch("GUILD_MEMBERS_CHUNK", chunk)
            self.stats.chunks_sent += 1
            self.stats.dispatched["GUILD_MEMBERS_CHUNK"] += 1
            self._on_change()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _chunk_json(
    guild: GuildState, batch: list[MemberState], index: int, tail: str, not_found: list[str]
) -> str:
    body = ",".join(member.json() for member in batch)
    extra = f',"not_found":{dumps(not_found)}' if not_found and index == 0 else ""
    return f'{{"guild_id":"{guild.id}","members":[{body}],"chunk_index":{index}{tail}{extra}}}'


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
