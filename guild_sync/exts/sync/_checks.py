"""Who may run and steer syncs: administrators and the configured moderator roles of the
configured guild, and only there.

The bot may be in other guilds too (or be sent a direct message): an administrator of another
guild is nobody's moderator here, so a command typed anywhere but the configured guild is
refused before any moderator check, and the guard's buttons ask the same question.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import discord
from discord.ext import commands

OUTSIDE_GUILD = "Sync commands only work in the server this bot syncs."


class OutsideGuild(commands.CheckFailure):
    """A sync command typed in a direct message or in another guild the bot is in."""

    def __init__(self) -> None:
        super().__init__(OUTSIDE_GUILD)


def is_moderator(
    user: discord.abc.User, moderator_role_ids: Iterable[int], guild_id: int | None
) -> bool:
    """Whether `user` is an administrator or holds a moderator role *of the configured guild*
    (a `discord.Member` carries the permissions and roles of the guild it was seen in)."""
    if not isinstance(user, discord.Member) or guild_id is None or user.guild.id != guild_id:
        return False
    if user.guild_permissions.administrator:
        return True
    wanted = set(moderator_role_ids)
    return any(role.id in wanted for role in user.roles)


def check_command(ctx: Any, guild_id: int | None, moderator_role_ids: Iterable[int]) -> bool:
    """The cog's check: raises `OutsideGuild` outside the configured guild (a DM, another
    guild); otherwise whether the author is one of its moderators."""
    guild = getattr(ctx, "guild", None)
    if guild is None or guild_id is None or guild.id != guild_id:
        raise OutsideGuild
    return is_moderator(ctx.author, moderator_role_ids, guild_id)
