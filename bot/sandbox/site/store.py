"""SQLite storage of the sandbox site's roles and users.

A user's roles are kept as compact JSON text in the user's row ("[1,2,3]"): one row per user keeps
bulk writes to one executemany, page reads to one range scan and seeding a million users to a few
seconds. The price is a table scan when a role is deleted, which is rare and which the real site
makes expensive anyway.

Paging follows the real site's LIMIT/OFFSET semantics (page N is rows (N-1)*size .. N*size-1 of
the current table) but remembers the last id of every page it served, so the next page becomes a
keyset query (`id > last`) instead of an OFFSET that walks the whole table. Those bookmarks stay
valid while no user is inserted or deleted; updates do not move rows between pages.

All methods run on the caller's thread and are short; the web app calls them from the event loop.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from guild_sync.site.records import Role, User

MAX_DB_INTEGER = 2**63 - 1
USER_COLUMNS = ("id", "name", "display_name", "discriminator", "roles", "in_guild")
ROLE_COLUMNS = ("id", "name", "colour", "permissions", "position")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS roles (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    colour INTEGER NOT NULL,
    permissions INTEGER NOT NULL,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    discriminator INTEGER NOT NULL,
    roles TEXT NOT NULL,
    in_guild INTEGER NOT NULL
);
"""
_USER_SELECT = "SELECT id, name, display_name, discriminator, roles, in_guild FROM users"
_USER_INSERT = "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)"
_USER_UPDATE = (
    "UPDATE users SET name = ?, display_name = ?, discriminator = ?, roles = ?, in_guild = ? "
    "WHERE id = ?"
)
_USER_JSON_SELECT = (
    "SELECT id, json_object('id', id, 'name', name, 'display_name', display_name, "
    "'discriminator', discriminator, 'roles', json(roles), "
    "'in_guild', CASE WHEN in_guild THEN json('true') ELSE json('false') END) FROM users"
)
_ROLE_SELECT = "SELECT id, name, colour, permissions, position FROM roles"
_HOLDS_ROLE = (
    "instr(roles, :role) "
    "AND instr(replace(replace(roles, '[', ','), ']', ','), ',' || :role || ',')"
)
"""A user row whose `roles` holds the id `:role` (given as text): "[1,2]" reads ",1,2,", so
",2," matches the whole id 2 and never 12 or 21; the plain `instr` first skips the rewrite for
the rows that cannot match."""

UserRow = dict[str, Any]
RoleRow = dict[str, Any]


def _roles_text(roles: Iterable[int]) -> str:
    return "[" + ",".join(map(str, roles)) + "]"


def _users_from_rows(rows: list[tuple[Any, ...]]) -> list[UserRow]:
    """Decode rows; all the role lists in one json.loads, since one call per row costs more."""
    all_roles = json.loads("[" + ",".join(row[4] for row in rows) + "]")
    return [
        {
            "id": user_id,
            "name": name,
            "display_name": display_name,
            "discriminator": discriminator,
            "roles": roles,
            "in_guild": bool(in_guild),
        }
        for (user_id, name, display_name, discriminator, _, in_guild), roles in zip(
            rows, all_roles, strict=True
        )
    ]


def _user_params(user: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        user["id"],
        user["name"],
        user["display_name"],
        user["discriminator"],
        _roles_text(user["roles"]),
        int(user["in_guild"]),
    )


def _update_params(user: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        user["name"],
        user["display_name"],
        user["discriminator"],
        _roles_text(user["roles"]),
        int(user["in_guild"]),
        user["id"],
    )


def _without_first(roles: list[int], role_id: int) -> list[int]:
    roles.remove(role_id)
    return roles


def _user_filter(filters: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """A WHERE clause of exact matches on user columns (names from USER_COLUMNS only)."""
    if not filters:
        return "", ()
    if not set(filters) <= set(USER_COLUMNS):
        raise ValueError(f"unknown user columns: {sorted(set(filters) - set(USER_COLUMNS))}")
    clause = " AND ".join(f"{column} = ?" for column in filters)
    return f" WHERE {clause}", tuple(filters.values())


def _role_from_row(row: tuple[Any, ...]) -> RoleRow:
    return dict(zip(ROLE_COLUMNS, row, strict=True))


def _role_params(role: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(role[column] for column in ROLE_COLUMNS)


class SiteStore:
    """The site's tables. Users and roles go in and out as dicts shaped like the site's JSON."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA synchronous = OFF")
        # 64 MiB of page cache: a million users (~45 MB) stay in memory after the first pass.
        self._db.execute("PRAGMA cache_size = -65536")
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(_SCHEMA)
        self._user_count: int = self._db.execute("SELECT COUNT(*) FROM users").fetchone()[0]
        self._role_ids: frozenset[int] | None = None
        self._page_ends: dict[int, dict[int, int]] = {}

    def __repr__(self) -> str:
        return f"SiteStore(path={self.path!r}, users={self._user_count})"

    def close(self) -> None:
        self._db.close()

    # -- roles ---------------------------------------------------------------------------

    def list_roles(self) -> list[RoleRow]:
        rows = self._db.execute(f"{_ROLE_SELECT} ORDER BY position DESC, id").fetchall()
        return [_role_from_row(row) for row in rows]

    def get_role(self, role_id: int) -> RoleRow | None:
        if not 0 <= role_id <= MAX_DB_INTEGER:
            return None
        row = self._db.execute(f"{_ROLE_SELECT} WHERE id = ?", (role_id,)).fetchone()
        return None if row is None else _role_from_row(row)

    def role_ids(self) -> frozenset[int]:
        """Every role id; cached because each user write with `roles` checks against it."""
        if self._role_ids is None:
            self._role_ids = frozenset(r for (r,) in self._db.execute("SELECT id FROM roles"))
        return self._role_ids

    def insert_role(self, role: Mapping[str, Any]) -> None:
        with self._db:
            self._db.execute("INSERT INTO roles VALUES (?, ?, ?, ?, ?)", _role_params(role))
        self._role_ids = None

    def save_role(self, role: Mapping[str, Any]) -> bool:
        """Django's `save()`: UPDATE the row with the role's id, INSERT it when there is none
        (a PUT or PATCH whose body names another id writes that id). True if it inserted."""
        with self._db:
            updated = self._db.execute(
                "UPDATE roles SET name = ?, colour = ?, permissions = ?, position = ? WHERE id = ?",
                (*_role_params(role)[1:], role["id"]),
            ).rowcount
            if not updated:
                self._db.execute("INSERT INTO roles VALUES (?, ?, ?, ?, ?)", _role_params(role))
        if not updated:
            self._role_ids = None
        return not updated

    def delete_role(self, role_id: int) -> int | None:
        """Delete a role and strip it from every user that holds it, as the site's cascade does:
        `roles.remove(id)`, so a user who holds the id twice keeps it once.

        Returns how many users were rewritten, or None when the role did not exist.
        """
        if self.get_role(role_id) is None:
            return None
        holders = self._db.execute(
            f"SELECT id, roles FROM users WHERE {_HOLDS_ROLE}", {"role": str(role_id)}
        ).fetchall()
        rewrites = [
            (_roles_text(_without_first(json.loads(roles), role_id)), user_id)
            for user_id, roles in holders
        ]
        with self._db:
            self._db.executemany("UPDATE users SET roles = ? WHERE id = ?", rewrites)
            self._db.execute("DELETE FROM roles WHERE id = ?", (role_id,))
        self._role_ids = None
        return len(rewrites)

    def count_holders(self, role_id: int) -> int:
        """How many users' `roles` name `role_id`, as written now: a test reads a role
        deletion's real progress here, from what the site holds, not from the bot's counts."""
        query = f"SELECT COUNT(*) FROM users WHERE {_HOLDS_ROLE}"
        return self._db.execute(query, {"role": str(role_id)}).fetchone()[0]

    # -- users ---------------------------------------------------------------------------

    def count_users(self, filters: Mapping[str, Any] | None = None) -> int:
        """All users, or those whose columns equal `filters` (column -> value)."""
        if not filters:
            return self._user_count
        where, params = _user_filter(filters)
        return self._db.execute(f"SELECT COUNT(*) FROM users{where}", params).fetchone()[0]

    def get_user(self, user_id: int) -> UserRow | None:
        if not 0 <= user_id <= MAX_DB_INTEGER:
            return None
        rows = self._db.execute(f"{_USER_SELECT} WHERE id = ?", (user_id,)).fetchall()
        return _users_from_rows(rows)[0] if rows else None

    def get_users(self, user_ids: Iterable[int]) -> dict[int, UserRow]:
        """The users among `user_ids` that exist, in one query (ids travel as one JSON array);
        an id the table cannot hold (2**63 or more) exists nowhere."""
        ids_json = json.dumps([i for i in user_ids if 0 <= i <= MAX_DB_INTEGER])
        rows = self._db.execute(
            f"{_USER_SELECT} WHERE id IN (SELECT value FROM json_each(?))", (ids_json,)
        ).fetchall()
        return {user["id"]: user for user in _users_from_rows(rows)}

    def users_page_json(
        self, page: int, page_size: int, filters: Mapping[str, Any] | None = None
    ) -> str:
        """Rows (page-1)*page_size .. page*page_size-1 in id order as a JSON array; page from 1.
        With `filters`, of the users whose columns equal them (a plain LIMIT/OFFSET query).

        SQLite writes each user's JSON itself (json_object), which is several times faster than
        decoding the rows and encoding them again in Python.
        """
        if filters:
            where, params = _user_filter(filters)
            rows = self._db.execute(
                f"{_USER_JSON_SELECT}{where} ORDER BY id LIMIT ? OFFSET ?",
                (*params, page_size, (page - 1) * page_size),
            ).fetchall()
            return "[" + ",".join(user_json for _, user_json in rows) + "]"
        ends = self._page_ends.setdefault(page_size, {})
        anchor = max((p for p in ends if p < page), default=0)
        if anchor:
            rows = self._db.execute(
                f"{_USER_JSON_SELECT} WHERE id > ? ORDER BY id LIMIT ? OFFSET ?",
                (ends[anchor], page_size, (page - 1 - anchor) * page_size),
            ).fetchall()
        else:
            rows = self._db.execute(
                f"{_USER_JSON_SELECT} ORDER BY id LIMIT ? OFFSET ?",
                (page_size, (page - 1) * page_size),
            ).fetchall()
        if rows:
            ends[page] = rows[-1][0]
        return "[" + ",".join(user_json for _, user_json in rows) + "]"

    def users_page(self, page: int, page_size: int) -> list[UserRow]:
        return json.loads(self.users_page_json(page, page_size))

    def insert_user(self, user: Mapping[str, Any]) -> None:
        with self._db:
            self._db.execute(_USER_INSERT, _user_params(user))
        self._rows_added(1)

    def insert_users_ignoring_existing(self, users: Iterable[Mapping[str, Any]]) -> int:
        """INSERT OR IGNORE: ids already present are skipped untouched. Returns rows inserted."""
        before = self._db.total_changes
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO users VALUES (?, ?, ?, ?, ?, ?)",
                (_user_params(user) for user in users),
            )
        inserted = self._db.total_changes - before
        self._rows_added(inserted)
        return inserted

    def update_users(self, users: Iterable[Mapping[str, Any]]) -> None:
        """Write every column of existing users (the caller merged partial updates already).

        Rows are written in id order: neighbouring ids share B-tree pages, so each page is
        visited once instead of once per user.
        """
        rows = sorted(map(_update_params, users), key=lambda params: params[-1])
        with self._db:
            self._db.executemany(_USER_UPDATE, rows)

    def save_user(self, user: Mapping[str, Any]) -> bool:
        """Django's `save()`: UPDATE the row with the user's id, INSERT it when there is none
        (a PUT or PATCH whose body names another id writes that id). True if it inserted."""
        with self._db:
            updated = self._db.execute(_USER_UPDATE, _update_params(user)).rowcount
            if not updated:
                self._db.execute(_USER_INSERT, _user_params(user))
        if not updated:
            self._rows_added(1)
        return not updated

    def delete_user(self, user_id: int) -> bool:
        if not 0 <= user_id <= MAX_DB_INTEGER:
            return False
        with self._db:
            deleted = self._db.execute("DELETE FROM users WHERE id = ?", (user_id,)).rowcount
        self._rows_added(-deleted)
        return deleted > 0

    def _rows_added(self, delta: int) -> None:
        if delta:
            self._user_count += delta
            self._page_ends.clear()

    # -- bulk loading and consistency checks ---------------------------------------------

    def seed(self, roles: Iterable[Role], users: Iterable[User]) -> None:
        """Load records straight into the tables (benchmarks preload a million users this way).

        Ids must be new; users are written in the order given, so sorted ids load fastest.
        """
        role_rows = ((r.id, r.name, r.colour, r.permissions, r.position) for r in roles)
        user_rows = (
            (
                u.id,
                u.name,
                u.display_name,
                u.discriminator,
                _roles_text(sorted(u.roles)),
                int(u.in_guild),
            )
            for u in users
        )
        with self._db:
            self._db.executemany("INSERT INTO roles VALUES (?, ?, ?, ?, ?)", role_rows)
            self._db.executemany(_USER_INSERT, user_rows)
        self._role_ids = None
        self._user_count = self._db.execute("SELECT COUNT(*) FROM users").fetchone()[0]
        self._page_ends.clear()

    def all_roles(self) -> list[Role]:
        return [Role(*row) for row in self._db.execute(f"{_ROLE_SELECT} ORDER BY id")]

    def all_users(self) -> Iterator[User]:
        """Every user in id order, streamed: a million records would not fit a list comfortably."""
        cursor = self._db.execute(f"{_USER_SELECT} ORDER BY id")
        while rows := cursor.fetchmany(10_000):
            for user in _users_from_rows(rows):
                yield User(**{**user, "roles": frozenset(user["roles"])})
