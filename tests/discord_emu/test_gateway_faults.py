"""The gateway's faults, each switched on by a test and met by an unmodified discord.py client:
sessions ended by 4007/4009 or expired, RATE_LIMITED member requests, member chunks at a pace
with events between them, guilds unavailable at READY and in outages, heartbeats enforced and
op 7 RECONNECT. Every fault is placed by construction (a gate, a switch), never by timing."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import discord
import pytest
from discord.ext import commands

from bot.sandbox.discord import LoopbackDiscord
from bot.sandbox.discord.gateway import CHUNK_SIZE

from .conftest import listen, make_bot, running, sync_intents
from .test_resume import ImpatientBot

pytestmark = pytest.mark.timeout(60)


def impatient_bot(**options: object) -> commands.Bot:
    return ImpatientBot(
        command_prefix="!",
        intents=sync_intents(),
        guild_ready_timeout=0.05,
        help_command=None,
        **options,
    )


@pytest.mark.parametrize("close_code", [4007, 4009])
async def test_a_close_that_ends_the_session_makes_the_bot_identify_again(
    emulator: LoopbackDiscord, close_code: int
) -> None:
    guild_state = emulator.create_guild(member_count=300)
    bot = impatient_bot()
    joins = listen(bot, "member_join")
    async with running(emulator, bot):
        first_cache = bot.get_guild(guild_state.id)
        assert emulator.drop_gateway(close_code=close_code) == 1
        await emulator.wait_until(lambda: emulator.gateway_stats.identifies == 2)
        newcomer = emulator.add_member(guild_state.id, "after.new.session")
        await joins.wait_for(lambda member: member.id == newcomer.id)
        assert bot.get_guild(guild_state.id) is not first_cache, "not a fresh READY"
    stats = emulator.gateway_stats
    assert close_code in stats.server_closes
    assert (stats.sessions_ended, stats.invalid_sessions, stats.resumes) == (1, 1, 0)


async def test_a_close_with_another_code_keeps_the_session_resumable(
    emulator: LoopbackDiscord,
) -> None:
    emulator.create_guild(member_count=300)
    async with running(emulator, make_bot()) as bot:
        resumed = listen(bot, "resumed")
        emulator.drop_gateway(close_code=4000)
        await resumed.wait_for(lambda: True)
    stats = emulator.gateway_stats
    assert (stats.sessions_ended, stats.invalid_sessions, stats.resumes) == (0, 0, 1)


async def test_a_session_without_a_socket_past_its_expiry_cannot_resume(
    emulator: LoopbackDiscord,
) -> None:
    emulator.create_guild(member_count=300)
    bot = impatient_bot()
    resumed = listen(bot, "resumed")
    async with running(emulator, bot):
        emulator.expire_sessions_after(3600)
        emulator.drop_gateway()
        await resumed.wait_for(lambda: True)
        assert emulator.gateway_stats.resumes == 1
        emulator.expire_sessions_after(0)  # any time without a socket is too long
        emulator.drop_gateway()
        await emulator.wait_until(lambda: emulator.gateway_stats.identifies == 2)
    stats = emulator.gateway_stats
    assert (stats.sessions_expired, stats.invalid_sessions, stats.resumes) == (1, 1, 1)


async def test_a_second_request_for_all_members_within_the_window_is_rate_limited(
    emulator: LoopbackDiscord,
) -> None:
    """The frame is Discord's (op 0, t RATE_LIMITED, opcode 8, retry_after, meta with the
    guild and nonce); no chunks follow; a request with a query is not limited."""
    guild_state = emulator.create_guild(member_count=1_000)
    emulator.limit_member_requests(30.0)
    bot = commands.Bot(
        command_prefix="!",
        intents=sync_intents(),
        guild_ready_timeout=0.05,
        help_command=None,
        enable_debug_events=True,
    )
    frames: list[dict] = []

    async def on_socket_raw_receive(message: str) -> None:
        if '"RATE_LIMITED"' in message:
            frames.append(json.loads(message))

    bot.add_listener(on_socket_raw_receive)
    async with running(emulator, bot):
        guild = bot.get_guild(guild_state.id)
        assert guild is not None and guild.chunked  # the first request was answered
        chunks = emulator.gateway_stats.chunks_sent
        assert bot.ws is not None
        await bot.ws.request_chunks(guild_state.id, query="", limit=0, nonce="again")
        await emulator.wait_until(lambda: bool(emulator.gateway_stats.rate_limited))
        found = await guild.query_members("member00000", limit=5)
        assert len(found) == 5, "a request with a query is not rate limited"
        await asyncio.wait_for(_until(lambda: bool(frames)), 5)
    [limited] = emulator.gateway_stats.rate_limited
    assert (limited.guild_id, limited.nonce) == (guild_state.id, "again")
    assert 0 < limited.retry_after <= 30
    [frame] = frames
    assert (frame["op"], frame["t"]) == (0, "RATE_LIMITED")
    assert frame["d"] == {
        "opcode": 8,
        "retry_after": limited.retry_after,
        "meta": {"guild_id": str(guild_state.id), "nonce": "again"},
    }
    stats = emulator.gateway_stats
    assert stats.chunks_sent == chunks + 1  # the query's answer, none for the limited request
    assert [r.rate_limited for r in stats.member_requests] == [False, True, False]


async def test_discord_py_has_no_handler_for_a_rate_limited_start_up_request(
    emulator: LoopbackDiscord,
) -> None:
    """Another process of the bot asked just before: discord.py waits its chunk timeout (5 s)
    for chunks that never come, then says it is ready with an incomplete member cache."""
    guild_state = emulator.create_guild(member_count=1_000)
    emulator.limit_member_requests(30.0)
    emulator.note_member_request(guild_state.id)
    async with running(emulator, make_bot()) as bot:
        guild = bot.get_guild(guild_state.id)
        assert guild is not None and not guild.chunked
        assert guild.member_count == 1_000 and len(guild.members) == 1  # only the bot
    assert len(emulator.gateway_stats.rate_limited) == 1
    assert emulator.gateway_stats.chunks_sent == 0


async def test_chunks_at_a_pace_interleave_with_joins_leaves_and_updates(
    emulator: LoopbackDiscord,
) -> None:
    """With the first chunk delivered and the others held, members of both halves leave and
    change and one joins; each later chunk is built when sent, so the cache ends exactly as
    the guild is, with the right member count."""
    guild_state = emulator.create_guild(member_count=3 * CHUNK_SIZE)
    ordinary = [m.id for m in guild_state.members.values() if not m.user.bot][1:]
    delivered, held = ordinary[10:20], ordinary[-10:]
    emulator.pace_chunks(0.05)
    emulator.hold_chunks(after=1)

    async def meanwhile() -> None:
        await emulator.wait_until(lambda: emulator.chunks_held)
        assert emulator.gateway_stats.chunks_sent == 1
        for user_id in delivered[:3] + held[:3]:
            emulator.remove_member(guild_state.id, user_id)
        for user_id in delivered[3:6] + held[3:6]:
            emulator.update_member(guild_state.id, user_id, nick=f"changed {user_id}")
        emulator.add_member(guild_state.id, "joined.during.chunking")
        emulator.release_chunks()

    side = asyncio.create_task(meanwhile())
    async with running(emulator, make_bot()) as bot:
        await side
        guild = bot.get_guild(guild_state.id)
        assert guild is not None
        await emulator.wait_until(lambda: emulator.gateway_stats.chunks_sent == 3)
        await asyncio.wait_for(_until(lambda: guild.chunked), 10)
        assert {m.id for m in guild.members} == set(guild_state.members)
        assert guild.member_count == len(guild_state.members) == 3 * CHUNK_SIZE - 6 + 1
        for user_id in delivered[3:6] + held[3:6]:
            assert guild.get_member(user_id).nick == f"changed {user_id}"
    [request] = emulator.gateway_stats.member_requests
    assert request.chunk_count == 3


async def test_a_guild_unavailable_at_ready_arrives_when_the_test_says(
    emulator: LoopbackDiscord,
) -> None:
    guild_state = emulator.create_guild(member_count=1_000)
    emulator.make_guild_unavailable(guild_state.id)
    bot = make_bot()
    available = listen(bot, "guild_available")
    async with running(emulator, bot):
        stub = bot.get_guild(guild_state.id)
        assert stub is not None and stub.unavailable  # READY's stub, and on_ready came
        newcomer = emulator.add_member(guild_state.id, "joined.before.it.arrived")
        assert emulator.gateway_stats.withheld["GUILD_MEMBER_ADD"] == 1
        emulator.make_guild_available(guild_state.id)
        (guild,) = await available.wait_for(lambda guild: True)
        assert not guild.unavailable and guild.chunked
        assert guild.get_member(newcomer.id) is not None
        assert len(guild.members) == 1_001
    assert emulator.gateway_stats.dispatched["GUILD_CREATE"] == 1


async def test_guild_creates_after_a_delay_come_after_on_ready() -> None:
    async with LoopbackDiscord(guild_create_delay_s=0.3) as emulator:
        guild_state = emulator.create_guild(member_count=300)
        bot = make_bot()  # guild_ready_timeout 0.05 s: READY is dispatched before the guild
        available = listen(bot, "guild_available")
        async with running(emulator, bot):
            assert bot.get_guild(guild_state.id).unavailable
            (guild,) = await available.wait_for(lambda guild: True)
            assert guild.chunked and len(guild.members) == 300


async def test_an_outage_is_guild_delete_unavailable_then_guild_create(
    emulator: LoopbackDiscord,
) -> None:
    guild_state = emulator.create_guild(member_count=1_000)
    target = next(m for m in guild_state.members.values() if not m.user.bot and m.nick is None)
    bot = make_bot()
    unavailable = listen(bot, "guild_unavailable")
    updates = listen(bot, "member_update")
    async with running(emulator, bot):
        available = listen(bot, "guild_available")  # after the start-up's own
        emulator.make_guild_unavailable(guild_state.id)
        await unavailable.wait_for(lambda guild: guild.id == guild_state.id)
        assert bot.get_guild(guild_state.id).unavailable
        emulator.update_member(guild_state.id, target.id, nick="Changed In The Outage")
        assert emulator.gateway_stats.withheld["GUILD_MEMBER_UPDATE"] == 1
        emulator.make_guild_available(guild_state.id)
        await available.wait_for(lambda guild: guild.id == guild_state.id)
        guild = bot.get_guild(guild_state.id)
        assert not guild.unavailable and len(guild.members) == 1_000
        assert updates.seen == [], "an event of the unavailable guild was sent"
    stats = emulator.gateway_stats
    assert (stats.dispatched["GUILD_DELETE"], stats.dispatched["GUILD_CREATE"]) == (1, 2)


async def test_a_connection_that_stops_heartbeating_is_closed_and_its_session_ends() -> None:
    async with LoopbackDiscord(heartbeat_interval_ms=100, heartbeat_timeout_multiple=1.5) as em:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(em.gateway_url) as socket:
                hello = await socket.receive_json()
                assert hello["op"] == 10
                await socket.send_json({"op": 2, "d": {"token": em.token, "intents": 1}})
                ready = await socket.receive_json()
                assert ready["t"] == "READY"
                closing = await socket.receive()  # no heartbeat sent: the gateway closes
                assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 4009)
            async with http.ws_connect(em.gateway_url) as socket:
                await socket.receive_json()
                resume = {"token": em.token, "session_id": ready["d"]["session_id"], "seq": 1}
                await socket.send_json({"op": 6, "d": resume})
                assert await socket.receive_json() == {"op": 9, "d": False}
        stats = em.gateway_stats
        assert stats.heartbeat_timeouts == 1 and stats.server_closes == [4009]
        assert stats.sessions_ended == 1


async def test_a_client_that_heartbeats_keeps_its_connection_under_enforcement() -> None:
    # A margin that holds on a loaded machine: a beat may come 2 s late (1.5 intervals of 50 ms
    # did not: a busy core delayed one past 75 ms and the emulator closed a healthy client).
    async with LoopbackDiscord(heartbeat_interval_ms=100, heartbeat_timeout_multiple=20) as em:
        em.create_guild(member_count=300)
        async with running(em, make_bot()):
            await em.wait_until(lambda: em.gateway_stats.heartbeats >= 6, within=5)
        stats = em.gateway_stats
        assert (stats.heartbeat_timeouts, stats.identifies, stats.resumes) == (0, 1, 0)


async def test_op_7_reconnect_makes_the_bot_resume_and_loses_nothing(
    emulator: LoopbackDiscord,
) -> None:
    guild_state = emulator.create_guild(member_count=300)
    target = next(m for m in guild_state.members.values() if not m.user.bot and m.nick is None)
    bot = make_bot()
    resumed = listen(bot, "resumed")
    updates = listen(bot, "member_update")
    async with running(emulator, bot):
        assert emulator.request_reconnect() == 1
        emulator.update_member(guild_state.id, target.id, nick="Sent While Reconnecting")
        await resumed.wait_for(lambda: True)
        await updates.wait_for(lambda before, after: after.nick == "Sent While Reconnecting")
    stats = emulator.gateway_stats
    assert (stats.reconnects_requested, stats.identifies, stats.resumes) == (1, 1, 1)
    assert 4000 in stats.client_closes  # discord.py closes with 4000 to keep its session


async def _until(condition) -> None:
    """For conditions on the client's side, which the emulator's waiters do not see."""
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.01)


def test_discord_py_still_has_no_rate_limited_parser() -> None:
    """The premise of the cog's own RATE_LIMITED handling (MemberRequests)."""
    state = make_bot()._connection
    assert "RATE_LIMITED" not in state.parsers
    assert isinstance(state.parsers, dict)
    assert discord.__version__.startswith("2.")
