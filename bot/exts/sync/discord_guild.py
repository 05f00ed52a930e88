"""The engine's `GuildState` read from discord.py's cache of one guild.

This is the only place that turns discord.py objects into the engine's records. It reads the cache
at call time, so a chunk built during a long sync carries the newest value of every member.
"""

from __future__ import annotations

import discord

from bot.site.records import Role, User


def role_record(role: discord.Role) -> Role:
    return Role(
        id=role.id,
        name=role.name,
        colour=role.colour.value,
        permissions=role.permissions.value,
        position=role.position,
    )


def member_record(member: discord.Member) -> User:
    """The site's view of a member: @everyone is implied, so it is not listed among the roles."""
    return User(
        id=member.id,
        name=member.name,
        display_name=member.display_name,
        discriminator=int(member.discriminator),
        roles=frozenset(role.id for role in member.roles if not role.is_default()),
        in_guild=True,
    )


class DiscordGuildState:
    def __init__(self, guild: discord.Guild) -> None:
        self.guild = guild

    def roles(self) -> list[Role]:
        return [role_record(role) for role in self.guild.roles]

    def member(self, user_id: int) -> User | None:
        member = self.guild.get_member(user_id)
        return None if member is None else member_record(member)

    def member_ids(self) -> list[int]:
        return [member.id for member in self.guild.members]

    def member_count(self) -> int:
        return len(self.guild.members)

    @property
    def fully_chunked(self) -> bool:
        """Whether the cache holds every member; a user diff on a partial cache marks the
        unseen members as having left, so no user sync may start before this is true."""
        return self.guild.chunked
