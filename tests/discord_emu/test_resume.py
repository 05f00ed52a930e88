"""A dropped gateway connection is resumed and the events sent while it was down replayed."""

from __future__ import annotations

from discord.ext import commands

from bot.sandbox.discord import LoopbackDiscord
from bot.sandbox.discord.server import RESUME_GATEWAY_PATH

from .conftest import listen, make_bot, running, sync_intents


class ImpatientBot(commands.Bot):
    """discord.py waits 5 s before every IDENTIFY after the first (Discord's identify limit);
    the emulator has no such limit, so this test bot skips the wait."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


async def test_dropped_connection_resumes_and_replays_missed_events(
    emulator: LoopbackDiscord,
) -> None:
    guild_state = emulator.create_guild(member_count=1_000)
    target = next(m for m in guild_state.members.values() if m.user.username == "member000002")
    bot = make_bot()
    resumed = listen(bot, "resumed")
    updates = listen(bot, "member_update")
    async with running(emulator, bot):
        assert emulator.drop_gateway() == 1
        # Dispatched while no socket is attached: only a replay can deliver these.
        emulator.update_member(guild_state.id, target.id, nick="Missed While Down")
        new_role = emulator.create_role(guild_state.id, "Created While Down")
        await resumed.wait_for(lambda: True)
        await updates.wait_for(lambda before, after: after.nick == "Missed While Down")
        guild = bot.get_guild(guild_state.id)
        assert guild.get_role(new_role.id) is not None
        assert guild.get_member(target.id).nick == "Missed While Down"
        assert len(guild.members) == 1_000
    stats = emulator.gateway_stats
    assert (stats.identifies, stats.resumes, stats.invalid_sessions) == (1, 1, 0)
    assert stats.connection_paths[-1] == RESUME_GATEWAY_PATH


async def test_unresumable_session_is_invalidated_and_the_bot_identifies_again(
    emulator: LoopbackDiscord,
) -> None:
    guild_state = emulator.create_guild(member_count=300)
    bot = ImpatientBot(
        command_prefix="!", intents=sync_intents(), guild_ready_timeout=0.05, help_command=None
    )
    joins = listen(bot, "member_join")
    async with running(emulator, bot):
        emulator.invalidate_sessions()
        emulator.drop_gateway(close_code=4000)
        await emulator.wait_until(lambda: emulator.gateway_stats.identifies == 2)
        newcomer = emulator.add_member(guild_state.id, "after.reidentify")
        await joins.wait_for(lambda member: member.id == newcomer.id)
    stats = emulator.gateway_stats
    assert (stats.resumes, stats.invalid_sessions) == (0, 1)


async def test_heartbeats_are_acknowledged_and_keep_the_session() -> None:
    async with LoopbackDiscord(heartbeat_interval_ms=50) as emulator:
        guild_state = emulator.create_guild(member_count=300)
        bot = make_bot()
        joins = listen(bot, "member_join")
        async with running(emulator, bot):
            await emulator.wait_until(lambda: emulator.gateway_stats.heartbeats >= 4, within=5)
            assert bot.latency < 1.0  # set from a HEARTBEAT_ACK
            newcomer = emulator.add_member(guild_state.id, "after.heartbeats")
            await joins.wait_for(lambda member: member.id == newcomer.id)
        stats = emulator.gateway_stats
        assert (stats.identifies, stats.resumes, stats.server_closes) == (1, 0, [])
        assert emulator.unimplemented_calls == []
