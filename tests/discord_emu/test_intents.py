"""Privileged intents the application lacks end the session with 4014, as on Discord."""

from __future__ import annotations

import discord
import pytest
from discord.ext import commands

from bot.sandbox.discord import LoopbackDiscord
from bot.sandbox.discord.gateway import GUILD_MEMBERS, MESSAGE_CONTENT

from .conftest import listen, make_bot, running, sync_intents


async def test_missing_privileged_intent_raises_privileged_intents_required() -> None:
    async with LoopbackDiscord(privileged_intents=GUILD_MEMBERS) as emulator:
        emulator.create_guild(member_count=10)
        with pytest.raises(discord.PrivilegedIntentsRequired):
            async with running(emulator, make_bot()):
                pass
        assert emulator.gateway_stats.server_closes == [4014]
        assert emulator.gateway_stats.identifies == 0
        assert emulator.unimplemented_calls == []


async def test_without_message_content_the_bot_sees_empty_messages() -> None:
    async with LoopbackDiscord(privileged_intents=GUILD_MEMBERS | MESSAGE_CONTENT) as emulator:
        guild = emulator.create_guild(member_count=10)
        channel_id = emulator.channel_named(guild.id, "general")
        author = next(m for m in guild.members.values() if m.user.username == "member000001")
        bot = make_bot(sync_intents(message_content=False))
        messages = listen(bot, "message")

        @bot.command()
        async def ping(ctx: commands.Context) -> None:
            await ctx.send("pong")

        async with running(emulator, bot):
            emulator.post_message(channel_id, author.id, "!ping")
            last = emulator.post_message(channel_id, author.id, "second")
            await messages.wait_for(lambda message: message.id == last.id)
        assert [message.content for (message,) in messages.seen] == ["", ""]
        assert emulator.message_stats.created_by_bot == 0


async def test_without_message_content_a_message_mentioning_the_bot_keeps_its_content() -> None:
    """Discord keeps the content of messages that mention the bot (and of DMs) for a bot
    without the intent; everyone else's messages arrive empty."""
    async with LoopbackDiscord(privileged_intents=GUILD_MEMBERS) as emulator:
        guild = emulator.create_guild(member_count=10)
        channel_id = emulator.channel_named(guild.id, "general")
        author = next(m for m in guild.members.values() if m.user.username == "member000001")
        bot = make_bot(sync_intents(message_content=False))
        messages = listen(bot, "message")
        async with running(emulator, bot):
            mention = f"<@{emulator.bot_user.id}> status?"
            emulator.post_message(channel_id, author.id, "no mention")
            last = emulator.post_message(channel_id, author.id, mention)
            await messages.wait_for(lambda message: message.id == last.id)
        seen = [(message.content, message.mentions) for (message,) in messages.seen]
        assert [content for content, _ in seen] == ["", mention]
        assert [user.id for user in seen[1][1]] == [emulator.bot_user.id]
