"""Who may run and steer syncs: administrators and the configured moderator roles."""

from __future__ import annotations

from collections.abc import Iterable

import discord


def is_moderator(user: discord.abc.User, moderator_role_ids: Iterable[int]) -> bool:
    if not isinstance(user, discord.Member):
        return False
    if user.guild_permissions.administrator:
        return True
    wanted = set(moderator_role_ids)
    return any(role.id in wanted for role in user.roles)
