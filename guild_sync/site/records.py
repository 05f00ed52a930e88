"""Plain records of roles and users, shaped like the site's JSON.

The engine compares and sends these; discord.py objects are converted to them at the edge, so
the engine, the benchmarks and the tests never need a Discord client.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, TypeVar

USER_FIELDS = ("name", "display_name", "discriminator", "roles", "in_guild")
ROLE_FIELDS = ("name", "colour", "permissions", "position")


Record = TypeVar("Record", "User", "Role")


def as_site_stores(record: Record) -> Record:
    """The record as the site would store it: names stripped of leading and trailing
    whitespace with Python's `str.strip()` (Unicode spaces such as U+3000 too), as the site's
    fields do (../shared/site-api.md, "Strings are trimmed").

    The diff, the queue's payloads and the dry-run plan all use this form: compared raw, a
    member whose name ends in a space would differ from the site's copy on every run and be
    written forever. A name that is only whitespace becomes "", which the site refuses as blank:
    a record it cannot store, reported once per run and not retried.
    """
    if isinstance(record, User):
        name, display_name = record.name.strip(), record.display_name.strip()
        if name == record.name and display_name == record.display_name:
            return record
        return replace(record, name=name, display_name=display_name)
    name = record.name.strip()
    return record if name == record.name else replace(record, name=name)


class RecordError(ValueError):
    """A JSON object from the site that does not have the shape of a user or a role."""


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"field {key!r} should be an integer, got {value!r:.80}")
    return value


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise RecordError(f"field {key!r} should be a string, got {value!r:.80}")
    return value


@dataclass(frozen=True, slots=True)
class Role:
    id: int
    name: str
    colour: int
    permissions: int
    position: int

    @classmethod
    def from_json(cls, data: Any) -> Role:
        if not isinstance(data, dict):
            raise RecordError(f"a role should be an object, got {data!r:.80}")
        return cls(
            id=_int(data, "id"),
            name=_str(data, "name"),
            colour=_int(data, "colour"),
            permissions=_int(data, "permissions"),
            position=_int(data, "position"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "colour": self.colour,
            "permissions": self.permissions,
            "position": self.position,
        }


@dataclass(frozen=True, slots=True)
class User:
    """A guild member as the site stores it; `roles` is a frozenset because order never matters."""

    id: int
    name: str
    display_name: str
    discriminator: int
    roles: frozenset[int]
    in_guild: bool = True

    @classmethod
    def from_json(cls, data: Any) -> User:
        if not isinstance(data, dict):
            raise RecordError(f"a user should be an object, got {data!r:.80}")
        roles = data.get("roles", [])
        if not isinstance(roles, list) or not all(
            isinstance(r, int) and not isinstance(r, bool) for r in roles
        ):
            raise RecordError(f"field 'roles' should be a list of integers, got {roles!r:.80}")
        in_guild = data.get("in_guild", True)
        if not isinstance(in_guild, bool):
            raise RecordError(f"field 'in_guild' should be a boolean, got {in_guild!r:.80}")
        display_name = data.get("display_name", "")
        if not isinstance(display_name, str):
            raise RecordError(f"field 'display_name' should be a string, got {display_name!r:.80}")
        return cls(
            id=_int(data, "id"),
            name=_str(data, "name"),
            display_name=display_name,
            discriminator=_int(data, "discriminator"),
            roles=frozenset(roles),
            in_guild=in_guild,
        )

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, **self.fields_json(USER_FIELDS)}

    def fields_json(self, fields: tuple[str, ...] | frozenset[str]) -> dict[str, Any]:
        """The JSON of the given fields only, as a partial update sends them."""
        out: dict[str, Any] = {}
        for field in fields:
            value = getattr(self, field)
            out[field] = sorted(value) if field == "roles" else value
        return out

    def differing_fields(self, other: User) -> frozenset[str]:
        return frozenset(f for f in USER_FIELDS if getattr(self, f) != getattr(other, f))
