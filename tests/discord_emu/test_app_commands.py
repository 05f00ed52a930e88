"""Application commands: an unmodified discord.py registers them (bulk overwrite), reads them
back, receives APPLICATION_COMMAND interactions and answers them within Discord's deadlines."""

from __future__ import annotations

import asyncio

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from bot.sandbox.discord import LoopbackDiscord
from bot.sandbox.discord.app_commands import CommandHidden, CommandUnavailable
from bot.sandbox.discord.interactions import (
    CHANNEL_MESSAGE_WITH_SOURCE,
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
    TOKEN_LIFETIME_S,
)
from bot.sandbox.discord.state import ADMINISTRATOR

from .conftest import make_bot, running

MANAGE_ROLES = 1 << 28


class Seen:
    """What the bot's command callbacks saw, and a hold point a callback can wait at."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []
        self.release = asyncio.Event()
        self.done = asyncio.Event()
        self.errors: list[BaseException] = []


def sync_group(seen: Seen) -> app_commands.Group:
    group = app_commands.Group(
        name="sync",
        description="Sync the site",
        default_permissions=discord.Permissions(manage_roles=True),
        guild_only=True,
    )

    @group.command(name="users", description="Sync users")
    async def users(interaction: discord.Interaction, dry_run: bool = False) -> None:
        member = interaction.user
        assert isinstance(member, discord.Member)
        seen.calls.append(("users", {"dry_run": dry_run, "roles": len(member.roles)}))
        await interaction.response.send_message(f"dry run: {dry_run}", ephemeral=dry_run)

    @group.command(name="slow", description="Answers after a deferral")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await seen.release.wait()
        try:
            await interaction.followup.send("done")
            await interaction.edit_original_response(content="done, edited")
            seen.calls.append(("slow", {"original": (await interaction.original_response()).id}))
        except discord.HTTPException as error:
            seen.errors.append(error)
        finally:
            seen.done.set()

    @group.command(name="late", description="Answers after the deadline")
    async def late(interaction: discord.Interaction) -> None:
        await seen.release.wait()
        try:
            await interaction.response.send_message("too late")
        except discord.HTTPException as error:
            seen.errors.append(error)
        finally:
            seen.done.set()

    return group


def command_bot(guild_id: int, seen: Seen) -> commands.Bot:
    bot = make_bot()
    bot.tree.add_command(sync_group(seen), guild=discord.Object(guild_id))
    return bot


def world(emulator: LoopbackDiscord):
    guild = emulator.create_guild(member_count=30, role_names=("Members", "Moderators"))
    moderators = emulator.role_named(guild.id, "Moderators")
    emulator.update_role(guild.id, moderators.id, permissions=MANAGE_ROLES)
    moderator = emulator.add_member(guild.id, "mod.erin", roles=[moderators.id])
    member = emulator.add_member(guild.id, "plain.frank")
    channel_id = emulator.channel_named(guild.id, "general")
    return guild, moderator, member, channel_id


async def test_a_bulk_overwrite_is_stored_read_back_and_keeps_ids(emulator: LoopbackDiscord):
    guild, *_ = world(emulator)
    seen = Seen()
    bot = command_bot(guild.id, seen)
    async with running(emulator, bot):
        target = discord.Object(guild.id)
        [synced] = await bot.tree.sync(guild=target)
        assert synced.name == "sync" and synced.guild_id == guild.id
        assert synced.default_member_permissions == discord.Permissions(manage_roles=True)
        [fetched] = await bot.tree.fetch_commands(guild=target)
        assert fetched.id == synced.id
        assert [option.name for option in fetched.options] == ["users", "slow", "late"]
        [again] = await bot.tree.sync(guild=target)
        [stored] = emulator.registered_commands(guild.id)
        assert again.id == synced.id and stored.id == synced.id
        assert await bot.tree.fetch_commands() == [], "nothing global"
        bot.tree.clear_commands(guild=target)
        assert await bot.tree.sync(guild=target) == []
    assert emulator.registered_commands(guild.id) == []
    assert [names for _, names in emulator.app_commands.stats.overwrites] == [
        ("sync",),
        ("sync",),
        (),
    ]


async def test_a_registration_breaking_discords_rules_is_refused(emulator: LoopbackDiscord):
    guild, *_ = world(emulator)
    bot = make_bot()
    async with running(emulator, bot):
        assert bot.application_id is not None
        bad = [
            {"name": "Sync", "description": "upper case"},
            {
                "name": "sync",
                "description": "required after optional",
                "options": [
                    {"type": 5, "name": "a", "description": "a"},
                    {"type": 5, "name": "b", "description": "b", "required": True},
                ],
            },
            {"name": "sync", "description": ""},
        ]
        for payload in bad:
            with pytest.raises(discord.HTTPException) as refused:
                await bot.http.bulk_upsert_guild_commands(bot.application_id, guild.id, [payload])
            assert (refused.value.status, refused.value.code) == (400, 50035)
        emulator.withhold_command_scope(guild.id)
        with pytest.raises(discord.Forbidden) as forbidden:
            await bot.tree.sync(guild=discord.Object(guild.id))
        assert forbidden.value.code == 50001
    assert emulator.app_commands.stats.refused_overwrites == 4


async def test_a_slash_command_reaches_its_callback_with_its_options(emulator: LoopbackDiscord):
    guild, moderator, _, channel_id = world(emulator)
    seen = Seen()
    bot = command_bot(guild.id, seen)
    async with running(emulator, bot):
        await bot.tree.sync(guild=discord.Object(guild.id))
        record = await emulator.slash_command(channel_id, moderator.id, "sync users", {})
        dry = await emulator.slash_command(
            channel_id, moderator.id, "sync users", {"dry_run": True}
        )
    assert seen.calls == [
        ("users", {"dry_run": False, "roles": 2}),  # @everyone and Moderators
        ("users", {"dry_run": True, "roles": 2}),
    ]
    assert record.callback.type == CHANNEL_MESSAGE_WITH_SOURCE
    assert record.command == "sync users"
    [answer] = emulator.interaction_messages(record)
    assert answer.content == "dry run: False" and answer.interaction_id == record.id
    assert dry.callback.data["flags"] & 64


async def test_who_sees_a_command_follows_its_permissions_and_overwrites(
    emulator: LoopbackDiscord,
):
    guild, moderator, member, channel_id = world(emulator)
    admins = emulator.create_role(guild.id, "Admins", permissions=ADMINISTRATOR)
    admin = emulator.add_member(guild.id, "admin.gail", roles=[admins.id])
    seen = Seen()
    bot = command_bot(guild.id, seen)
    async with running(emulator, bot):
        with pytest.raises(CommandUnavailable):  # nothing registered yet
            await emulator.slash_command(channel_id, moderator.id, "sync users")
        await bot.tree.sync(guild=discord.Object(guild.id))
        with pytest.raises(CommandHidden):  # no Manage Roles
            await emulator.slash_command(channel_id, member.id, "sync users")
        await emulator.slash_command(channel_id, admin.id, "sync users")
        emulator.set_command_permissions(guild.id, "sync", {guild.id: True, moderator.id: False})
        await emulator.slash_command(channel_id, member.id, "sync users")
        with pytest.raises(CommandHidden):
            await emulator.slash_command(channel_id, moderator.id, "sync users")
        with pytest.raises(CommandUnavailable):
            await emulator.slash_command(channel_id, admin.id, "sync groups")
        with pytest.raises(CommandUnavailable):
            await emulator.slash_command(channel_id, admin.id, "sync users", {"force": True})
        with pytest.raises(TypeError):
            await emulator.slash_command(channel_id, admin.id, "sync users", {"dry_run": "yes"})
    assert len(seen.calls) == 2


async def test_a_deferral_is_followed_up_until_the_token_expires(emulator: LoopbackDiscord):
    guild, moderator, _, channel_id = world(emulator)
    seen = Seen()
    bot = command_bot(guild.id, seen)
    async with running(emulator, bot):
        await bot.tree.sync(guild=discord.Object(guild.id))
        record = await emulator.slash_command(channel_id, moderator.id, "sync slow")
        assert record.callback.type == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
        seen.release.set()
        await seen.done.wait()
        assert seen.errors == []
        answer = emulator.original_response(record)
        assert answer is not None
        assert [v.content for v in answer.versions] == ["", "done", "done, edited"]
        assert seen.calls == [("slow", {"original": answer.id})]

        seen.release.clear()
        seen.done.clear()
        expiring = await emulator.slash_command(channel_id, moderator.id, "sync slow")
        emulator.interaction_clock.advance(TOKEN_LIFETIME_S + 1)
        seen.release.set()
        await seen.done.wait()
    [error] = seen.errors
    assert isinstance(error, discord.NotFound) and error.code == 10015  # Unknown Webhook
    assert expiring.expired_token_calls == 1
    assert emulator.original_response(expiring).content == ""


async def test_a_callback_after_three_seconds_is_an_unknown_interaction(
    emulator: LoopbackDiscord,
):
    guild, moderator, _, channel_id = world(emulator)
    seen = Seen()
    bot = command_bot(guild.id, seen)
    async with running(emulator, bot):
        await bot.tree.sync(guild=discord.Object(guild.id))
        member = guild.members[moderator.id]
        record = emulator.interactions.invoke(channel_id, member, "sync late", {})
        # Whenever the bot's callback runs, it now comes too late: it waits for `release`.
        emulator.interaction_clock.advance(3.5)
        assert emulator.interaction_failed(record)
        seen.release.set()
        await seen.done.wait()
    [error] = seen.errors
    assert isinstance(error, discord.NotFound) and error.code == 10062  # Unknown interaction
    assert record.late_callbacks == 1 and record.callback is None
