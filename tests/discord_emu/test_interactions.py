"""Button clicks reach a discord.ui.View's callbacks and the bot's answers are recorded."""

from __future__ import annotations

import discord
from discord.ext import commands

from bot.sandbox.discord import LoopbackDiscord
from bot.sandbox.discord.interactions import (
    CHANNEL_MESSAGE_WITH_SOURCE,
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
    UPDATE_MESSAGE,
)

from .conftest import make_bot, running


class Panel(discord.ui.View):
    @discord.ui.button(label="Approve", custom_id="panel:approve")
    async def approve(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(
            content=f"approved by {interaction.user.name}", view=None
        )

    @discord.ui.button(label="Details", custom_id="panel:details")
    async def details(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.send_message("details", ephemeral=True)
        await interaction.followup.send("more details")
        await interaction.edit_original_response(content="details, edited")

    @discord.ui.button(label="Slow", custom_id="panel:slow")
    async def slow(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send("slow answer")


def panel_bot() -> commands.Bot:
    bot = make_bot()

    @bot.command()
    async def panel(ctx: commands.Context) -> None:
        await ctx.send("Run the sync?", view=Panel(timeout=30))

    return bot


async def _panel_message(emulator: LoopbackDiscord, channel_id: int, author_id: int):
    emulator.post_message(channel_id, author_id, "!panel")
    await emulator.wait_until(lambda: emulator.message_stats.created_by_bot == 1)
    return emulator.channel_messages(channel_id)[-1]


async def test_update_message_click_edits_the_panel(emulator: LoopbackDiscord) -> None:
    guild = emulator.create_guild(member_count=300)
    moderator = emulator.add_member(guild.id, "mod.bob")
    channel_id = emulator.channel_named(guild.id, "general")
    async with running(emulator, panel_bot()):
        panel = await _panel_message(emulator, channel_id, moderator.id)
        assert panel.custom_ids() == {"panel:approve", "panel:details", "panel:slow"}
        record = await emulator.click_button(
            panel.id, "panel:approve", channel_id=channel_id, member_id=moderator.id
        )
    assert record.callback is not None and record.callback.type == UPDATE_MESSAGE
    assert [v.content for v in panel.versions] == ["Run the sync?", "approved by mod.bob"]
    assert panel.current.components == ()


async def test_reply_followup_and_original_edit_are_recorded(emulator: LoopbackDiscord) -> None:
    guild = emulator.create_guild(member_count=300)
    moderator = emulator.add_member(guild.id, "mod.carol")
    channel_id = emulator.channel_named(guild.id, "general")
    async with running(emulator, panel_bot()):
        panel = await _panel_message(emulator, channel_id, moderator.id)
        record = await emulator.click_button(
            panel.id, "panel:details", channel_id=channel_id, member_id=moderator.id
        )
        await emulator.wait_until(lambda: emulator.message_stats.edits == 1)
    assert record.callback.type == CHANNEL_MESSAGE_WITH_SOURCE
    assert record.callback.data["flags"] & 64  # ephemeral
    messages = {m.id: m for m in emulator.channel_messages(channel_id)}
    original = messages[record.original_message_id]
    assert [v.content for v in original.versions] == ["details", "details, edited"]
    [followup_id] = record.followup_message_ids
    assert messages[followup_id].content == "more details"
    assert panel.edits == 0


async def test_deferred_thinking_is_replaced_by_the_first_followup(
    emulator: LoopbackDiscord,
) -> None:
    guild = emulator.create_guild(member_count=300)
    moderator = emulator.add_member(guild.id, "mod.dave")
    channel_id = emulator.channel_named(guild.id, "general")
    async with running(emulator, panel_bot()):
        panel = await _panel_message(emulator, channel_id, moderator.id)
        record = await emulator.click_button(
            panel.id, "panel:slow", channel_id=channel_id, member_id=moderator.id
        )
        await emulator.wait_until(lambda: emulator.message_stats.edits == 1)
    assert record.callback.type == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    messages = {m.id: m for m in emulator.channel_messages(channel_id)}
    answer = messages[record.original_message_id]
    assert [v.content for v in answer.versions] == ["", "slow answer"]
    assert record.followup_message_ids == []
