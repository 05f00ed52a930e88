"""The engine's read-only view of the guild, and an in-memory guild for tests and benchmarks.

The engine never sees discord.py objects: the Discord extension adapts `discord.Guild` to
`GuildState`, and everything else (tests, the benchmark, the sandbox) uses `InMemoryGuild`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from guild_sync.engine.leavers import MemberCheck
from guild_sync.site.records import Role, User, as_site_stores


class GuildState(Protocol):
    """What the engine reads from the guild; it reads it again whenever it builds a write."""

    def roles(self) -> list[Role]: ...

    def member(self, user_id: int) -> User | None:
        """The current record (in_guild=True, only roles the guild still has), None if absent."""
        ...

    def member_ids(self) -> Iterable[int]: ...

    def member_count(self) -> int: ...

    # Optional: `async def still_members(self, user_ids: Sequence[int]) -> Collection[int]`,
    # which of these ids the guild's authority (Discord) still counts as members. A guild that
    # has it gets a sample of a run's leavers looked up before they are written (leavers.py).


class InMemoryGuild:
    """A dict-backed guild with mutators, lean enough for a million members.

    Members are stored as the frozen `User` records the engine reads, with identical role sets
    shared (interned): a million members holding one of a few role combinations then cost one
    small record each instead of one frozenset each.
    """

    def __init__(self, roles: Iterable[Role] = (), members: Iterable[User] = ()) -> None:
        self._roles: dict[int, Role] = {role.id: role for role in roles}
        self._members: dict[int, User] = {}
        self._role_sets: dict[frozenset[int], frozenset[int]] = {}
        for user in members:
            self.add_member(user)

    # -- GuildState --------------------------------------------------------------------------

    def roles(self) -> list[Role]:
        return list(self._roles.values())

    def member(self, user_id: int) -> User | None:
        user = self._members.get(user_id)
        if user is None or all(role_id in self._roles for role_id in user.roles):
            return user
        kept = frozenset(r for r in user.roles if r in self._roles)
        return User(user.id, user.name, user.display_name, user.discriminator, kept, True)

    def member_ids(self) -> Iterable[int]:
        return self._members.keys()

    def member_count(self) -> int:
        return len(self._members)

    # -- mutators ----------------------------------------------------------------------------

    def add_member(self, user: User) -> None:
        """Add or replace a member; stored as present in the guild whatever `in_guild` says."""
        roles = self._role_sets.setdefault(user.roles, user.roles)
        self._members[user.id] = User(
            user.id, user.name, user.display_name, user.discriminator, roles, True
        )

    update_member = add_member

    def remove_member(self, user_id: int) -> None:
        self._members.pop(user_id, None)

    def add_role(self, role: Role) -> None:
        self._roles[role.id] = role

    update_role = add_role

    def remove_role(self, role_id: int) -> None:
        """Forget a role; members keep it stored, `member()` no longer reports it (as Discord)."""
        self._roles.pop(role_id, None)


class AsSiteStores:
    """A guild whose every record is read as the site would store it (`as_site_stores`).

    The engine wraps whatever guild it is given in this, so the diff, the payloads built when a
    chunk is sent and the plan's samples all see one form of each value.
    """

    def __init__(self, guild: GuildState) -> None:
        self.raw = guild

    def roles(self) -> list[Role]:
        return [as_site_stores(role) for role in self.raw.roles()]

    def member(self, user_id: int) -> User | None:
        member = self.raw.member(user_id)
        return None if member is None else as_site_stores(member)

    def member_ids(self) -> Iterable[int]:
        return self.raw.member_ids()

    def member_count(self) -> int:
        return self.raw.member_count()

    @property
    def member_check(self) -> MemberCheck | None:
        """The guild's `still_members` (Discord's answer for ids the cache lacks), or None for a
        guild with no one to ask, whose member list is the truth (see leavers.py)."""
        return getattr(self.raw, "still_members", None)
