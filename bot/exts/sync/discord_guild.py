"""The engine's `GuildState` read from discord.py's cache of one guild.

This is the only place that turns discord.py objects into the engine's records. It reads the cache
at call time, so a chunk built during a long sync carries the newest value of every member.

The records are exactly what python-discord/bot's syncer (`bot/exts/backend/sync/_syncers.py`)
has written to the site for years, because that is what the real site holds:

- a user's `roles` is `[role.id for role in member.roles]`, and discord.py's `Member.roles`
  includes the guild's default role (@everyone, whose id is the guild's id), so every member's
  `roles` holds the guild id;
- the roles are every role of the guild, @everyone included (position 0);
- `display_name` is discord.py's `Member.display_name` (nick, else global name, else username),
  `discriminator` is `int(member.discriminator)` (0 for new-style usernames).

Any other convention (leaving @everyone out, say) makes the first start-up against the real site
rewrite every user. The sandbox world (`bot/sandbox/world.py`) and the benchmarks follow it too.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    """The site's view of a member, as upstream writes it: @everyone is among the roles."""
    return User(
        id=member.id,
        name=member.name,
        display_name=member.display_name,
        discriminator=int(member.discriminator),
        roles=frozenset(role.id for role in member.roles),
        in_guild=True,
    )


class DiscordGuildState:
    """One complete member cache at a time: the cog rebinds it to the client's new `Guild`
    once a fresh READY (a reconnect that could not resume) has loaded every member again.

    discord.py drops its cache on every READY and builds new `Guild` objects; the old one stays
    as it was, complete but frozen. Until the new one holds every member, reading it would see
    most members as gone, so the old one is read (the engine builds no writes meanwhile, see
    `SyncEngine.pause`) and never a partial one."""

    def __init__(self, guild: discord.Guild) -> None:
        self.guild = guild

    def rebind(self, guild: discord.Guild) -> None:
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

    async def still_members(self, user_ids: Sequence[int]) -> list[int]:
        """Which of these ids Discord still counts as members, asked one at a time with
        `guild.fetch_member` (GET /guilds/{id}/members/{user_id}); a 404 (Unknown Member, or
        Unknown User for a deleted account) means gone. The engine asks this about a sample of
        the users a run would mark as left (bot/engine/leavers.py); any other error is raised,
        and the run then marks nobody as left."""
        present = []
        for user_id in user_ids:
            try:
                await self.guild.fetch_member(user_id)
            except discord.NotFound:
                continue
            present.append(user_id)
        return present

    @property
    def fully_chunked(self) -> bool:
        """Whether the cache holds every member; a user diff on a partial cache marks the
        unseen members as having left, so no user sync may start before this is true."""
        return cache_complete(self.guild)


def cache_complete(guild: discord.Guild) -> bool:
    """Whether discord.py's cache of `guild` holds every member: its count of cached members
    against the member count Discord sent (and keeps up to date with joins and leaves), not
    whether a chunk request ended: a request ends early, all but empty, when READY comes again,
    and discord.py announces the guild available after a chunk timeout too."""
    expected = guild.member_count
    return not guild.unavailable and expected is not None and len(guild.members) >= expected
