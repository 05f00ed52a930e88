"""Guild changes (roles, members, users) and the gateway events Discord sends for each."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

from .errors import UNKNOWN_GUILD, UNKNOWN_MEMBER, UNKNOWN_ROLE, ApiError, unknown
from .gateway import GUILD_MEMBERS, GUILDS, Gateway
from .snowflake import SnowflakeFactory, iso_timestamp
from .state import (
    ADMINISTRATOR,
    ChannelState,
    GuildState,
    MemberState,
    RoleState,
    UserState,
    World,
)

RoleAssigner = Callable[[int, Sequence[RoleState]], Iterable[int]]
_UNSET: object = object()


def default_role_assignment(index: int, roles: Sequence[RoleState]) -> Iterable[int]:
    """Member n holds role k when n is divisible by k + 1: the first role is everyone's, the
    later ones ever rarer, so role deletes touch large but different slices of the guild."""
    return [role.id for k, role in enumerate(roles) if index % (k + 1) == 0]


class GuildService:
    def __init__(
        self,
        world: World,
        gateway: Gateway,
        snowflakes: SnowflakeFactory,
        on_change: Callable[[], None],
    ) -> None:
        self._world = world
        self._gateway = gateway
        self._snowflakes = snowflakes
        self._on_change = on_change

    def guild(self, guild_id: int) -> GuildState:
        guild = self._world.guilds.get(guild_id)
        if guild is None:
            raise unknown("Guild", UNKNOWN_GUILD)
        return guild

    def member(self, guild_id: int, user_id: int) -> MemberState:
        member = self.guild(guild_id).members.get(user_id)
        if member is None:
            raise unknown("Member", UNKNOWN_MEMBER)
        return member

    # -- building ---------------------------------------------------------------------------

    def create_guild(
        self,
        name: str,
        *,
        member_count: int,
        role_names: Sequence[str],
        channel_names: Sequence[str],
        assign_roles: RoleAssigner,
        role_permissions: Mapping[str, int] | None = None,
    ) -> GuildState:
        """Builds a guild with synthetic members in one pass; no events (the bot learns it at
        IDENTIFY), which is what keeps 100,000 members cheap. `role_permissions` gives roles
        by name their permission bits (an "Admins" role with ADMINISTRATOR, say)."""
        world = self._world
        guild_id = self._snowflakes.next()
        guild = GuildState(id=guild_id, name=name, owner_id=world.owner.id)
        guild.roles[guild_id] = RoleState(id=guild_id, name="@everyone", permissions=1 << 10)
        bot_role = RoleState(
            id=self._snowflakes.next(),
            name=world.bot_user.username,
            permissions=ADMINISTRATOR,
            position=1,
            managed=True,
        )
        guild.roles[bot_role.id] = bot_role
        synthetic_roles = []
        for position, role_name in enumerate(role_names, start=2):
            role = RoleState(
                id=self._snowflakes.next(),
                name=role_name,
                permissions=(role_permissions or {}).get(role_name, 0),
                position=position,
            )
            guild.roles[role.id] = role
            synthetic_roles.append(role)
        for position, channel_name in enumerate(channel_names):
            channel = ChannelState(
                id=self._snowflakes.next(), guild_id=guild_id, name=channel_name, position=position
            )
            guild.channels[channel.id] = channel
            world.channel_guilds[channel.id] = guild_id
        joined_at = iso_timestamp(datetime.now(UTC))
        for user, roles in ((world.owner, ()), (world.bot_user, (bot_role.id,))):
            guild.members[user.id] = MemberState(user, roles, None, joined_at)
        users = world.users
        members = guild.members
        next_id = self._snowflakes.next
        for index in range(member_count - len(guild.members)):
            user = UserState(next_id(), f"member{index:06d}", f"Member {index}")
            users[user.id] = user
            nick = f"Nick {index}" if index % 7 == 0 else None
            members[user.id] = MemberState(
                user, tuple(assign_roles(index, synthetic_roles)), nick, joined_at
            )
        world.guilds[guild_id] = guild
        self._on_change()
        return guild

    # -- roles ------------------------------------------------------------------------------

    def create_role(
        self, guild_id: int, name: str, *, colour: int = 0, permissions: int = 0
    ) -> RoleState:
        guild = self.guild(guild_id)
        position = max((role.position for role in guild.roles.values()), default=0) + 1
        role = RoleState(self._snowflakes.next(), name, colour, permissions, position)
        guild.roles[role.id] = role
        self._role_event("GUILD_ROLE_CREATE", guild, role)
        return role

    def update_role(
        self,
        guild_id: int,
        role_id: int,
        *,
        name: str | None = None,
        colour: int | None = None,
        permissions: int | None = None,
        position: int | None = None,
    ) -> RoleState:
        guild = self.guild(guild_id)
        role = guild.roles.get(role_id)
        if role is None:
            raise unknown("Role", UNKNOWN_ROLE)
        if name is not None:
            role.name = name
        if colour is not None:
            role.colour = colour
        if permissions is not None:
            role.permissions = permissions
        if position is not None:
            role.position = position
        self._role_event("GUILD_ROLE_UPDATE", guild, role)
        return role

    def delete_role(self, guild_id: int, role_id: int) -> list[int]:
        """Deletes a role and silently strips it from its holders (Discord sends no member
        updates for this); returns the ids of the members who held it."""
        guild = self.guild(guild_id)
        if role_id == guild.id or role_id not in guild.roles:
            raise unknown("Role", UNKNOWN_ROLE)
        del guild.roles[role_id]
        holders = []
        for member in guild.members.values():
            if role_id in member.roles:
                member.roles = tuple(r for r in member.roles if r != role_id)
                member.invalidate()
                holders.append(member.id)
        payload = {"guild_id": str(guild.id), "role_id": str(role_id)}
        self._gateway.dispatch("GUILD_ROLE_DELETE", payload, intent=GUILDS)
        self._on_change()
        return holders

    def _role_event(self, event: str, guild: GuildState, role: RoleState) -> None:
        payload = {"guild_id": str(guild.id), "role": role.to_json()}
        self._gateway.dispatch(event, payload, intent=GUILDS)
        self._on_change()

    # -- members and users ------------------------------------------------------------------

    def add_member(
        self,
        guild_id: int,
        *,
        username: str,
        global_name: str | None = None,
        nick: str | None = None,
        roles: Iterable[int] = (),
        user_id: int | None = None,
        bot: bool = False,
    ) -> MemberState:
        guild = self.guild(guild_id)
        user = self._world.users.get(user_id) if user_id is not None else None
        if user is None:
            user = UserState(user_id or self._snowflakes.next(), username, global_name, bot)
            self._world.users[user.id] = user
        if user.id in guild.members:
            raise ApiError(400, 0, "Already a member")
        member = MemberState(user, self._known_roles(guild, roles), nick, iso_timestamp())
        guild.members[user.id] = member
        payload = member.to_json() | {"guild_id": str(guild.id)}
        self._gateway.dispatch("GUILD_MEMBER_ADD", payload, intent=GUILD_MEMBERS)
        self._on_change()
        return member

    def remove_member(self, guild_id: int, user_id: int) -> None:
        guild = self.guild(guild_id)
        member = guild.members.pop(user_id, None)
        if member is None:
            raise unknown("Member", UNKNOWN_MEMBER)
        payload = {"guild_id": str(guild.id), "user": member.user.to_json()}
        self._gateway.dispatch("GUILD_MEMBER_REMOVE", payload, intent=GUILD_MEMBERS)
        self._on_change()

    def update_member(
        self,
        guild_id: int,
        user_id: int,
        *,
        nick: str | object | None = _UNSET,
        roles: Iterable[int] | None = None,
    ) -> MemberState:
        """Changes a member's nickname (None clears it) and/or roles; one GUILD_MEMBER_UPDATE."""
        guild = self.guild(guild_id)
        member = self.member(guild_id, user_id)
        if nick is not _UNSET:
            member.nick = nick if isinstance(nick, str) else None
        if roles is not None:
            member.roles = self._known_roles(guild, roles)
        member.invalidate()
        self._member_update(guild, member)
        return member

    def rename_user(
        self,
        user_id: int,
        *,
        username: str | None = None,
        global_name: str | object | None = _UNSET,
    ) -> UserState:
        """A user changes their account names: every guild holding them gets a GUILD_MEMBER_UPDATE
        carrying the new user object, and the bot itself would get USER_UPDATE."""
        user = self._world.users.get(user_id)
        if user is None:
            raise ValueError(f"unknown user {user_id}")
        if username is not None:
            user.username = username
        if global_name is not _UNSET:
            user.global_name = global_name if isinstance(global_name, str) else None
        if user is self._world.bot_user:
            self._gateway.dispatch("USER_UPDATE", user.to_json(), intent=None)
        for guild in self._world.guilds.values():
            member = guild.members.get(user_id)
            if member is not None:
                member.invalidate()
                self._member_update(guild, member)
        self._on_change()
        return user

    def _member_update(self, guild: GuildState, member: MemberState) -> None:
        payload = member.to_json() | {"guild_id": str(guild.id)}
        self._gateway.dispatch("GUILD_MEMBER_UPDATE", payload, intent=GUILD_MEMBERS)
        self._on_change()

    @staticmethod
    def _known_roles(guild: GuildState, roles: Iterable[int]) -> tuple[int, ...]:
        role_ids = tuple(dict.fromkeys(int(role_id) for role_id in roles))
        for role_id in role_ids:
            if role_id not in guild.roles or role_id == guild.id:
                raise unknown("Role", UNKNOWN_ROLE)
        return role_ids
