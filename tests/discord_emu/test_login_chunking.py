"""Login and member chunking at scale with a real discord.py client."""

from __future__ import annotations

import time

import discord
import pytest

from bot.sandbox.discord import LoopbackDiscord, point_discord_py_at
from bot.sandbox.discord.gateway import CHUNK_SIZE
from tests.e2e.harness import eventually

from .conftest import make_bot, running

MEMBERS = 50_000


async def test_bot_logs_in_and_chunks_fifty_thousand_members(emulator: LoopbackDiscord) -> None:
    guild_state = emulator.create_guild(member_count=MEMBERS)
    bot = make_bot()
    started = time.perf_counter()
    async with running(emulator, bot):
        guild = bot.get_guild(guild_state.id)
        assert guild is not None
        # discord.py says ready after max(5 s, members / 10,000 s) whether or not the chunks are
        # all in (on a busy machine they are not); what matters is that every member arrives.
        await eventually(lambda: guild.chunked, within=120)
        elapsed = time.perf_counter() - started
        assert len(guild.members) == MEMBERS
        sample = next(m for m in guild_state.members.values() if m.nick)
        cached = guild.get_member(sample.id)
        assert cached is not None
        assert (cached.name, cached.global_name, cached.nick) == (
            sample.user.username,
            sample.user.global_name,
            sample.nick,
        )
        assert {role.id for role in cached.roles} - {guild.id} == set(sample.roles)
        assert bot.user is not None and bot.user.id == emulator.bot_user.id
    stats = emulator.gateway_stats
    assert stats.identifies == 1
    [request] = stats.member_requests
    assert (request.guild_id, request.query, request.limit) == (guild_state.id, "", 0)
    assert request.chunk_count == stats.chunks_sent == -(-MEMBERS // CHUNK_SIZE)
    print(f"\nREADY + chunked {MEMBERS} members in {elapsed:.2f} s")


async def test_small_guild_arrives_whole_in_guild_create(emulator: LoopbackDiscord) -> None:
    guild_state = emulator.create_guild(member_count=200)
    async with running(emulator, make_bot()) as bot:
        guild = bot.get_guild(guild_state.id)
        assert guild is not None and guild.chunked and len(guild.members) == 200
    assert emulator.gateway_stats.member_requests == []


async def test_wrong_token_fails_login(emulator: LoopbackDiscord) -> None:
    restore = point_discord_py_at(emulator.api_url, emulator.gateway_url)
    bot = make_bot()
    try:
        with pytest.raises(discord.LoginFailure):
            await bot.login("not-the-token")
    finally:
        await bot.close()
        restore()
    assert emulator.rest_stats.unauthorized == 1
    assert emulator.gateway_stats.identifies == 0


@pytest.mark.parametrize("members", [200, 2_000], ids=["in-guild-create", "chunked"])
async def test_members_hidden_from_the_gateway_are_missing_from_a_cache_that_looks_complete(
    emulator: LoopbackDiscord, members: int
) -> None:
    """A partial member cache discord.py cannot tell from a whole one (`guild.chunked`), while
    Discord's REST still answers GET /guilds/{id}/members/{user_id} for every member."""
    guild_state = emulator.create_guild(member_count=members)
    ordinary = [m.id for m in guild_state.members.values() if not m.user.bot][1:]
    hidden = ordinary[: members * 15 // 100]
    emulator.hide_from_gateway(guild_state.id, hidden)
    async with running(emulator, make_bot()) as bot:
        guild = bot.get_guild(guild_state.id)
        assert guild is not None and guild.chunked
        assert len(guild.members) == members - len(hidden)
        assert guild.get_member(hidden[0]) is None
        fetched = await guild.fetch_member(hidden[0])
        assert fetched.name == guild_state.members[hidden[0]].user.username
        with pytest.raises(discord.NotFound) as info:
            await guild.fetch_member(1)  # no such member: Discord's 404 Unknown Member
        assert info.value.code == 10007 and info.value.text == "Unknown Member"
