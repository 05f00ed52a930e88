"""Role diff: what to create, update and delete on the site so its roles match the guild's."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from guild_sync.site.records import Role


@dataclass(frozen=True)
class RoleDiff:
    created: tuple[Role, ...]
    updated: tuple[Role, ...]
    """Guild versions of roles whose name, colour, permissions or position differ."""
    deleted: tuple[int, ...]
    """Ids the site has and the guild does not; deleted by stripping holders first."""

    @property
    def empty(self) -> bool:
        return not (self.created or self.updated or self.deleted)

    def counts(self) -> dict[str, int]:
        return {
            "create": len(self.created),
            "update": len(self.updated),
            "delete": len(self.deleted),
        }


def diff_roles(guild_roles: Iterable[Role], site_roles: Iterable[Role]) -> RoleDiff:
    site = {role.id: role for role in site_roles}
    guild = {role.id: role for role in guild_roles}
    return RoleDiff(
        created=tuple(role for role_id, role in guild.items() if role_id not in site),
        updated=tuple(
            role for role_id, role in guild.items() if role_id in site and site[role_id] != role
        ),
        deleted=tuple(sorted(role_id for role_id in site if role_id not in guild)),
    )
