"""Run the real bot: settings, logging, Sentry, then a discord.py bot with the sync extension."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from discord.ext import commands

from guild_sync.config import Settings, SettingsError, load_settings
from guild_sync.log import setup_logging

log = logging.getLogger(__name__)

SYNC_EXTENSION = "guild_sync.exts.sync"


def intents(*, message_content: bool = True) -> discord.Intents:
    """Members to see the guild's list; no presences. Message content only for the prefix
    commands: slash commands arrive as interactions, which need no intent, so a bot running
    slash commands only does not ask Discord for a privileged intent it does not use."""
    chosen = discord.Intents.default()
    chosen.members = True
    chosen.message_content = message_content
    chosen.presences = False
    return chosen


def build_bot(settings: Settings, **client_options: Any) -> commands.Bot:
    """The project's bot; `client_options` pass through to discord.py (tests shorten waits)."""
    bot = commands.Bot(
        command_prefix=settings.prefix,
        intents=intents(message_content=settings.prefix_commands),
        allowed_mentions=discord.AllowedMentions.none(),
        help_command=None,
        **client_options,
    )
    bot.sync_settings = settings  # type: ignore[attr-defined]  # read by the extension's setup()
    return bot


async def run(settings: Settings) -> None:
    if settings.discord_api_url:
        from bot.sandbox.discord.client_patch import point_discord_py_at

        point_discord_py_at(settings.discord_api_url, settings.discord_gateway_url)
        log.info("using the loopback Discord at %s", settings.discord_api_url)
    if not settings.prefix_commands:
        log.info(
            "SYNC_PREFIX_COMMANDS=false: slash commands only; not asking Discord for the "
            "Message Content intent"
        )
    bot = build_bot(settings)
    async with bot:
        await bot.load_extension(SYNC_EXTENSION)
        assert settings.bot_token is not None
        await bot.start(settings.bot_token.get_secret_value())


def main() -> int:
    settings = load_settings()
    if settings.bot_token is None:
        raise SettingsError("setting BOT_TOKEN: must be set to run the bot")
    settings.check_bot_ready()
    setup_logging(settings.log_level, settings.secrets())
    try:
        asyncio.run(run(settings))
    except discord.LoginFailure:
        log.error("Discord refused the bot token (BOT_TOKEN)")
        return 1
    except discord.PrivilegedIntentsRequired:
        if settings.prefix_commands:
            log.error(
                "enable the Server Members and Message Content intents for this application "
                "(or set SYNC_PREFIX_COMMANDS=false for slash commands only, which need no "
                "Message Content intent)"
            )
        else:
            log.error("enable the Server Members intent for this application")
        return 1
    except KeyboardInterrupt:
        pass
    return 0
