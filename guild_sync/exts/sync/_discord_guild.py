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

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import discord

from guild_sync.site.records import Role, User

log = logging.getLogger(__name__)

RATE_LIMITED = "RATE_LIMITED"
REQUEST_GUILD_MEMBERS = 8
MEMBER_REQUEST_WINDOW_S = 30.0
"""Discord's limit (since August 2025) on requests for all of a guild's members: one per guild
per bot every 30 s; a request within it is answered with a RATE_LIMITED dispatch, no chunks."""
CHUNK_TIMEOUT_MIN_S = 5.0


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
        the users a run would mark as left (guild_sync/engine/leavers.py); any other error is
        raised, and the run then marks nobody as left."""
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


def chunk_timeout(guild: discord.Guild) -> float:
    """How long discord.py waits for a guild's member chunks before it reports the guild (and
    READY) anyway: max(5 s, members / 10,000 s), as its `ConnectionState._chunk_timeout`."""
    return max(CHUNK_TIMEOUT_MIN_S, (guild.member_count or 0) / 10_000)


@dataclass(frozen=True)
class RateLimitNotice:
    """Discord's RATE_LIMITED answer to a request for a guild's members."""

    at: float
    """When it arrived (time.monotonic)."""
    retry_after: float
    nonce: str | None

    @property
    def retry_at(self) -> float:
        return self.at + self.retry_after


class MemberRequests:
    """The RATE_LIMITED dispatches Discord sends for the bot's member requests (opcode 8).

    discord.py 2.7 has no parser for that event: its gateway logs "Unknown event" at debug
    level and the request it sent stays open, unanswered, until the next READY, while it
    reports the guild and READY after its chunk timeout with a partial member cache. This adds
    a parser to the client's table of them (`ConnectionState.parsers`, which the gateway reads
    by event name), keeping discord.py's own should a later release bring one."""

    def __init__(self, bot: discord.Client) -> None:
        self._parsers: dict[str, Any] = bot._connection.parsers
        self._notices: dict[int, RateLimitNotice] = {}
        self._arrived: dict[int, asyncio.Event] = {}
        self.installed = self._parsers.setdefault(RATE_LIMITED, self._parse) == self._parse
        if not self.installed:
            log.info("discord.py parses RATE_LIMITED itself; its notices are not seen here")

    def close(self) -> None:
        if self._parsers.get(RATE_LIMITED) == self._parse:
            del self._parsers[RATE_LIMITED]

    def _parse(self, data: dict[str, Any]) -> None:
        if data.get("opcode") != REQUEST_GUILD_MEMBERS:
            log.warning("Discord rate limited gateway opcode %s: %s", data.get("opcode"), data)
            return
        meta = data.get("meta") or {}
        guild_id = int(meta.get("guild_id") or 0)
        retry_after = float(data.get("retry_after") or MEMBER_REQUEST_WINDOW_S)
        self._notices[guild_id] = RateLimitNotice(time.monotonic(), retry_after, meta.get("nonce"))
        self._event(guild_id).set()
        log.warning(
            "Discord rate limited the request for the members of guild %s (retry after %.1f s)",
            guild_id,
            retry_after,
        )

    def notice(self, guild_id: int) -> RateLimitNotice | None:
        """The RATE_LIMITED answer to the guild's last request, if it got one."""
        return self._notices.get(guild_id)

    async def wait_for_notice(self, guild_id: int) -> None:
        await self._event(guild_id).wait()

    def forget(self, guild_id: int | None = None) -> None:
        """A new request is going out (or READY dropped the open ones: None, every guild)."""
        for key in [guild_id] if guild_id is not None else list(self._notices):
            self._notices.pop(key, None)
            self._event(key).clear()

    def _event(self, guild_id: int) -> asyncio.Event:
        return self._arrived.setdefault(guild_id, asyncio.Event())


async def ask_for_members_again(guild: discord.Guild) -> None:
    """Send the request for all of the guild's members again, for discord.py's open request (its
    nonce), so that the chunks complete it and wake whoever waits on it. discord.py keeps a
    request that got no chunks open until the next READY, and `guild.chunk()` only joins an open
    one, never asks again. With none open, the next `guild.chunk()` asks itself."""
    state = guild._state
    pending = state._chunk_requests.get(guild.id)
    if pending is not None:
        await state.chunker(guild.id, nonce=pending.nonce)
