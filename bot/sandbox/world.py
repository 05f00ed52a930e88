"""A sandbox guild on the loopback Discord, what the site should hold for it, and the check.

Scenarios, the end-to-end tests and the benchmark-like demo all build the same world: a guild
with a "Developers" role held by every member (the outage's role), a few helpers, one moderator,
a log channel and a commands channel. A rehearsal against an operator's site builds its
community variant (`SandboxGuild.community`): the same, but members also hold a community's
spread of roles, so what it writes into that site is shaped like the real guild's data. The
site's expected contents are derived from the emulator's state with the same rules the bot
applies to discord.py's members, which are the rules of python-discord/bot's syncer that wrote
the real site's data: every member's `roles` holds the guild's default role (@everyone, id =
the guild's id), and the site's roles include @everyone. `upstream_users` builds that data from
the upstream code's own expression instead.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from bot.sandbox.discord import LoopbackDiscord
from bot.sandbox.discord.state import ADMINISTRATOR, GuildState, MemberState, RoleState
from guild_sync.site.client import SiteClient
from guild_sync.site.records import Role, User

DEVELOPERS, HELPERS, MODERATORS = "Developers", "Helpers", "Moderators"
LOG_CHANNEL, COMMANDS_CHANNEL = "sync-log", "general"
MAX_MISMATCHES_SHOWN = 20
COMMUNITY_ROLES = (
    "Announcements",
    "Events",
    "Python",
    "Voice Verified",
    "Contributors",
    "JavaScript",
    "Partners",
)
"""The community guild's roles besides the sandbox's three, the most often held first (a draw
weights each COMMUNITY_POPULARITY times the one before; Helpers, the staff, come last)."""
COMMUNITY_POPULARITY = 0.7
COMMUNITY_SPREAD = {0: 0.15, 1: 0.40, 2: 0.30, 3: 0.15}
"""How many roles a member of the community guild holds besides @everyone and Developers: a
minority none, most one to three (a community's opt-in and rank roles). A role deletion that
strips Developers leaves each member these, so its writes carry what a real guild's do."""

RoleAssigner = Callable[[int, Sequence[RoleState]], list[int]]


def _assign(index: int, roles: Sequence[RoleState]) -> list[int]:
    """Everyone is a developer, every tenth member a helper, member 1 the moderator."""
    by_name = {role.name: role.id for role in roles}
    held = [by_name[DEVELOPERS]]
    if index % 10 == 0:
        held.append(by_name[HELPERS])
    if index == 1:
        held.append(by_name[MODERATORS])
    return held


def _assign_community(seed: int) -> RoleAssigner:
    """Everyone is a developer (the outage's role, held by all) and member 1 the moderator; each
    member also holds COMMUNITY_SPREAD's number of roles, drawn from COMMUNITY_ROLES and
    Helpers by popularity. Seeded: the same guild every run of a seed."""
    rng = random.Random(seed)
    counts = list(COMMUNITY_SPREAD)
    count_weights = list(itertools.accumulate(COMMUNITY_SPREAD.values()))
    pool = (*COMMUNITY_ROLES, HELPERS)  # staff are few
    pool_weights = list(
        itertools.accumulate(COMMUNITY_POPULARITY**rank for rank in range(len(pool)))
    )

    def assign(index: int, roles: Sequence[RoleState]) -> list[int]:
        by_name = {role.name: role.id for role in roles}
        held = {DEVELOPERS} | ({MODERATORS} if index == 1 else set())
        wanted = len(held) + rng.choices(counts, cum_weights=count_weights)[0]
        while len(held) < wanted:
            held.add(rng.choices(pool, cum_weights=pool_weights)[0])
        return sorted(by_name[name] for name in held)

    return assign


@dataclass
class SandboxGuild:
    discord: LoopbackDiscord
    state: GuildState

    @classmethod
    def build(cls, discord: LoopbackDiscord, members: int) -> SandboxGuild:
        """The tests' guild: every member a developer, every tenth a helper, nothing else (a
        role deletion leaves 90% of them only @everyone; hundreds of tests count on it)."""
        return cls._create(discord, members, (DEVELOPERS, HELPERS, MODERATORS), _assign)

    @classmethod
    def community(cls, discord: LoopbackDiscord, members: int, *, seed: int = 0) -> SandboxGuild:
        """A guild whose members hold roles as a community's do (COMMUNITY_SPREAD), besides
        Developers, which all hold: what a rehearsal writes into an operator's site, so a
        rehearsed role deletion sends the site the role lists it would get on the real guild."""
        names = (DEVELOPERS, HELPERS, MODERATORS, *COMMUNITY_ROLES)
        return cls._create(discord, members, names, _assign_community(seed))

    @classmethod
    def _create(
        cls, discord: LoopbackDiscord, members: int, roles: Sequence[str], assign: RoleAssigner
    ) -> SandboxGuild:
        state = discord.create_guild(
            "Sandbox Guild",
            member_count=members,
            role_names=roles,
            channel_names=(COMMANDS_CHANNEL, LOG_CHANNEL),
            assign_roles=assign,
        )
        return cls(discord, state)

    @property
    def id(self) -> int:
        return self.state.id

    def role_id(self, name: str) -> int:
        return self.discord.role_named(self.id, name).id

    @property
    def log_channel_id(self) -> int:
        return self.discord.channel_named(self.id, LOG_CHANNEL)

    @property
    def commands_channel_id(self) -> int:
        return self.discord.channel_named(self.id, COMMANDS_CHANNEL)

    @property
    def moderator_id(self) -> int:
        moderators = self.role_id(MODERATORS)
        return next(m.id for m in self.state.members.values() if moderators in m.roles)

    @property
    def ordinary_member_id(self) -> int:
        """A member with no moderator role and no administrator permission."""
        moderators = self.role_id(MODERATORS)
        owner, bot = self.state.owner_id, self.discord.bot_user.id
        return next(
            m.id
            for m in self.state.members.values()
            if moderators not in m.roles and m.id not in (owner, bot)
        )

    def protected_ids(self) -> set[int]:
        """Members a scenario must not remove: the owner, the bot and the moderator."""
        return {self.state.owner_id, self.discord.bot_user.id, self.moderator_id}

    def bot_environ(self, *, site_url: str, site_token: str, state_url: str) -> dict[str, str]:
        """The settings a bot process needs to run against this guild and a site."""
        return {
            "BOT_TOKEN": self.discord.token,
            "GUILD_ID": str(self.id),
            "SYNC_LOG_CHANNEL_ID": str(self.log_channel_id),
            "SYNC_MODERATOR_ROLE_IDS": str(self.role_id(MODERATORS)),
            "URLS_SITE_API": site_url,
            "API_KEYS_SITE_API": site_token,
            "SYNC_STATE_URL": state_url,
            "DISCORD_API_URL": self.discord.api_url,
            "DISCORD_GATEWAY_URL": self.discord.gateway_url,
        }

    # -- what the site should hold ------------------------------------------------------------

    def expected_roles(self) -> list[Role]:
        return [role_record(role) for role in self.state.roles.values()]

    def expected_users(self) -> list[User]:
        return [self.member_record(member) for member in self.state.members.values()]

    def member_record(self, member: MemberState) -> User:
        """The site's record of a member, by the rule of python-discord/bot's syncer that the
        bot follows (`guild_sync/exts/sync/_discord_guild.py`): discord.py's display_name, and the
        roles of discord.py's `Member.roles`, which are @everyone (the guild's id) plus the
        member's roles the guild still has."""
        roles = self.state.roles
        return User(
            id=member.id,
            name=member.user.username,
            display_name=member.nick or member.user.global_name or member.user.username,
            discriminator=0,
            roles=frozenset({self.id, *(r for r in member.roles if r in roles)}),
            in_guild=True,
        )


ADMINS = "Admins"


@dataclass
class OtherGuild:
    """Another guild the bot is in, with a member who administers it (and nothing else): the
    bot syncs only its configured guild, so commands typed here must be refused."""

    state: GuildState
    admin_id: int
    channel_id: int

    @classmethod
    def build(cls, discord: LoopbackDiscord, name: str = "Other Guild") -> OtherGuild:
        """Built before the bot connects (it learns the guild at IDENTIFY): the owner, the bot
        and one member holding an Admins role with the administrator permission."""
        state = discord.create_guild(
            name,
            member_count=3,
            role_names=(ADMINS,),
            channel_names=(COMMANDS_CHANNEL,),
            assign_roles=lambda index, roles: [roles[0].id],
            role_permissions={ADMINS: ADMINISTRATOR},
        )
        admins = discord.role_named(state.id, ADMINS).id
        admin_id = next(m.id for m in state.members.values() if admins in m.roles)
        return cls(state, admin_id, discord.channel_named(state.id, COMMANDS_CHANNEL))


def role_record(role: RoleState) -> Role:
    return Role(role.id, role.name, role.colour, role.permissions, role.position)


FORMER_MEMBER_IDS = 5_000
"""First id of `upstream_users`' former members (far below snowflakes, so never a member)."""


def upstream_users(guild: SandboxGuild, former_members: int = 0) -> list[User]:
    """The site's users as python-discord/bot's syncer wrote them for this guild.

    Written from its code (`bot/exts/backend/sync/_syncers.py`), not from `member_record`, so a
    test seeding these checks the bot against the real site's data: `"roles": [role.id for role
    in member.roles]`, where discord.py's `Member.roles` is the guild's default role (@everyone,
    id = the guild's id) plus each role of the member's payload the guild has, by position.
    `former_members` users left the guild: upstream keeps their last roles, `in_guild` false.
    """
    state = guild.state

    def member_roles(role_ids: Sequence[int]) -> list[int]:
        held = [state.roles[r] for r in role_ids if r in state.roles] + [state.everyone_role]
        return [role.id for role in sorted(held, key=lambda role: (role.position, role.id))]

    users = [
        User(
            id=member.id,
            name=member.user.username,
            display_name=member.nick or member.user.global_name or member.user.username,
            discriminator=int(member.user.to_json()["discriminator"]),
            roles=frozenset(member_roles(member.roles)),
            in_guild=True,
        )
        for member in state.members.values()
    ]
    developers = guild.role_id(DEVELOPERS)
    users.extend(
        User(
            FORMER_MEMBER_IDS + n,
            f"former{n}",
            f"Former {n}",
            0,
            frozenset(member_roles([developers])),
            in_guild=False,
        )
        for n in range(former_members)
    )
    return users


async def mismatches(
    client: SiteClient, guild: SandboxGuild, excluded: Collection[int] = frozenset()
) -> list[str]:
    """Every difference between the site and the guild, read back from the site page by page.

    Members must match field by field; site users who are not members must be marked as left.
    `excluded` users are not compared: records the site's contract cannot store (a scenario
    expects the bot to isolate and list them instead).
    """
    found: list[str] = []
    site_roles = {role.id: role for role in await client.list_roles()}
    for role in guild.expected_roles():
        if site_roles.pop(role.id, None) != role:
            found.append(f"role {role.id} ({role.name!r}) differs or is missing")
    found.extend(f"role {role_id} is not in the guild" for role_id in site_roles)
    members = guild.state.members
    seen = 0
    async for page in client.iter_user_pages():
        for user in page:
            if user.id in excluded:
                continue
            member = members.get(user.id)
            if member is None:
                if user.in_guild:
                    found.append(f"user {user.id} left but the site says in_guild")
                continue
            seen += 1
            expected = guild.member_record(member)
            if user != expected:
                fields = sorted(user.differing_fields(expected))
                found.append(f"user {user.id} differs in {', '.join(fields)}")
    compared = sum(1 for member_id in members if member_id not in excluded)
    if seen != compared:
        found.append(f"{compared - seen} members are missing from the site")
    return found
