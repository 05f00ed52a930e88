"""The sync extension: `await bot.load_extension("guild_sync.exts.sync")` on any discord.py 2.7 bot.

Settings come from `bot.sync_settings` when the host bot provides them (the project's runner
does), otherwise from the environment and `.env`.
"""

from __future__ import annotations

from discord.ext import commands

from guild_sync.config import Settings, load_settings
from guild_sync.exts.sync._cog import SyncCog


async def setup(bot: commands.Bot) -> None:
    settings: Settings = getattr(bot, "sync_settings", None) or load_settings()
    settings.check_bot_ready()
    await bot.add_cog(SyncCog(bot, settings))
