"""Guild changes made in the emulator reach a real discord.py bot's cache as gateway events."""

from __future__ import annotations

from discord.ext import commands

from bot.sandbox.discord import LoopbackDiscord

from .conftest import listen, make_bot, running


async def test_moderator_ping_gets_a_reply_in_the_channel(emulator: LoopbackDiscord) -> None:
    guild = emulator.create_guild(member_count=300)
    moderators = emulator.role_named(guild.id, "Moderators")
    moderator = emulator.add_member(guild.id, "mod.alice", roles=[moderators.id])
    channel_id = emulator.channel_named(guild.id, "general")
    bot = make_bot()

    @bot.command()
    async def ping(ctx: commands.Context) -> None:
        await ctx.reply(f"pong for {ctx.author.name}")

    async with running(emulator, bot):
        command = emulator.post_message(channel_id, moderator.id, "!ping")
        await emulator.wait_until(lambda: emulator.message_stats.created_by_bot == 1)
    [_, reply] = emulator.channel_messages(channel_id)
    assert reply.author.id == emulator.bot_user.id
    assert reply.content == "pong for mod.alice"
    assert reply.message_reference is not None
    assert int(reply.message_reference["message_id"]) == command.id


async def test_member_nick_and_role_updates_reach_the_cache(emulator: LoopbackDiscord) -> None:
    guild_state = emulator.create_guild(member_count=300)
    helpers = emulator.role_named(guild_state.id, "Helpers")
    target = next(m for m in guild_state.members.values() if m.user.username == "member000001")
    bot = make_bot()
    updates = listen(bot, "member_update")
    async with running(emulator, bot):
        emulator.update_member(guild_state.id, target.id, nick="Renamed", roles=[helpers.id])
        before, after = await updates.wait_for(lambda before, after: after.id == target.id)
        assert before.nick is None and after.nick == "Renamed"
        member = bot.get_guild(guild_state.id).get_member(target.id)
        assert member.nick == "Renamed"
        assert [role.id for role in member.roles[1:]] == [helpers.id]


async def test_username_change_arrives_as_member_update(emulator: LoopbackDiscord) -> None:
    guild_state = emulator.create_guild(member_count=300)
    target = next(m for m in guild_state.members.values() if m.user.username == "member000001")
    bot = make_bot()
    user_updates = listen(bot, "user_update")
    async with running(emulator, bot):
        emulator.rename_user(target.id, username="new.name", global_name="New Name")
        before, after = await user_updates.wait_for(lambda before, after: after.id == target.id)
        assert (before.name, before.global_name) == ("member000001", "Member 1")
        assert (after.name, after.global_name) == ("new.name", "New Name")
        member = bot.get_guild(guild_state.id).get_member(target.id)
        assert (member.name, member.global_name) == ("new.name", "New Name")
    assert emulator.gateway_stats.dispatched["GUILD_MEMBER_UPDATE"] == 1


async def test_role_create_update_delete_reach_the_bot(emulator: LoopbackDiscord) -> None:
    guild_state = emulator.create_guild(member_count=300)
    members_role = emulator.role_named(guild_state.id, "Members")
    holder = next(m for m in guild_state.members.values() if members_role.id in m.roles)
    bot = make_bot()
    deleted = listen(bot, "guild_role_delete")
    created = listen(bot, "guild_role_create")
    updated = listen(bot, "guild_role_update")
    async with running(emulator, bot):
        guild = bot.get_guild(guild_state.id)
        assert members_role.id in [role.id for role in guild.get_member(holder.id).roles]
        new_role = emulator.create_role(guild_state.id, "Events", colour=0x00FF00)
        await created.wait_for(lambda role: role.id == new_role.id)
        emulator.update_role(guild_state.id, new_role.id, name="Event Team")
        await updated.wait_for(lambda before, after: after.name == "Event Team")
        holders = emulator.delete_role(guild_state.id, members_role.id)
        await deleted.wait_for(lambda role: role.id == members_role.id)
        assert guild.get_role(members_role.id) is None
        assert members_role.id not in [role.id for role in guild.get_member(holder.id).roles]
        assert guild.get_role(new_role.id).name == "Event Team"
    assert holder.id in holders and len(holders) == 300 - 2  # all but owner and bot
    assert emulator.gateway_stats.dispatched["GUILD_MEMBER_UPDATE"] == 0


async def test_member_join_and_leave_reach_the_bot(emulator: LoopbackDiscord) -> None:
    guild_state = emulator.create_guild(member_count=300)
    bot = make_bot()
    joins = listen(bot, "member_join")
    leaves = listen(bot, "member_remove")
    async with running(emulator, bot):
        newcomer = emulator.add_member(guild_state.id, "newcomer", global_name="New")
        await joins.wait_for(lambda member: member.id == newcomer.id)
        guild = bot.get_guild(guild_state.id)
        assert guild.member_count == 301 and guild.get_member(newcomer.id).name == "newcomer"
        emulator.remove_member(guild_state.id, newcomer.id)
        await leaves.wait_for(lambda member: member.id == newcomer.id)
        assert guild.get_member(newcomer.id) is None and guild.member_count == 300
