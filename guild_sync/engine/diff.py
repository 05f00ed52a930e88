"""The streamed user diff: the site's pages merged against the guild's sorted member ids.

Memory stays bounded whatever the guild size: the member ids live in one `array('q')` (8 bytes
each, where a set of a million ints costs ~50 MiB), a `bytearray` marks which of them the site
has, and only one page of site users is held at a time.

Creates are yielded after the walk, not during it: the site paginates by offset, so a row
inserted below the cursor shifts later pages by one and the walk would see that row twice. Our
own writes during the walk are patches only; a member join sent by the event path can still
insert a row, and the walk skips such repeats when they are ids of the previous page.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import Enum

from guild_sync.engine.guild import GuildState
from guild_sync.site.client import SiteClient
from guild_sync.site.records import USER_FIELDS, User


class Kind(Enum):
    PATCH = "patch"
    """The site has the user: send the listed fields."""
    CREATE = "create"
    """The site is known to lack the user: bulk create the full record."""
    UPSERT = "upsert"
    """Unknown (a member join): bulk create (existing ids are skipped), then patch every field."""


ALL_FIELDS = frozenset(USER_FIELDS)
LEFT_FIELDS = frozenset({"in_guild"})


class PageOrderError(RuntimeError):
    """The site's user pages are not ordered by id ascending, so the merge would be wrong."""


@dataclass(frozen=True, slots=True)
class UserChange:
    user_id: int
    kind: Kind
    fields: frozenset[str]
    site: User | None
    """The site's record when it has one (for samples in dry runs)."""
    leave: bool = False
    """The site has the user in the guild and the guild's members lack them: mark them left."""


@dataclass
class DiffStats:
    scanned: int = 0
    unchanged: int = 0
    creates: int = 0
    updates: int = 0
    leaves: int = 0
    by_field: Counter[str] = field(default_factory=Counter)
    site_total: int | None = None
    """Users the site holds, as its first page said: the scan's share read is scanned / this."""

    def planned(self) -> dict[str, int]:
        return {"create": self.creates, "update": self.updates, "leave": self.leaves}


async def iter_user_changes(
    client: SiteClient,
    guild: GuildState,
    page_size: int,
    stats: DiffStats,
    on_page: Callable[[], None] | None = None,
) -> AsyncIterator[UserChange]:
    """Yield every user write needed for the site to match the guild, counting into `stats`."""
    members = array("q", sorted(guild.member_ids()))
    on_site = bytearray(len(members))
    cursor = 0
    last_id = -1
    previous_page: set[int] = set()
    async for page in client.iter_user_pages(page_size):
        stats.site_total = getattr(page, "site_total", None) or stats.site_total
        page_ids: set[int] = set()
        previous_in_page = -1
        for site_user in page:
            user_id = site_user.id
            if user_id <= previous_in_page:
                raise PageOrderError(
                    f"the site's user page lists id {user_id} after {previous_in_page}; "
                    "the sync needs pages ordered by id ascending"
                )
            previous_in_page = user_id
            page_ids.add(user_id)
            if user_id <= last_id:
                if user_id in previous_page:
                    continue  # a row inserted during the walk shifted this page; already seen
                raise PageOrderError(
                    f"the site's user pages went back from id {last_id} to {user_id}; "
                    "the sync needs pages ordered by id ascending"
                )
            last_id = user_id
            stats.scanned += 1
            cursor = bisect_left(members, user_id, cursor)
            current = None
            if cursor < len(members) and members[cursor] == user_id:
                on_site[cursor] = 1
                current = guild.member(user_id)
            change = _change(site_user, current, stats)
            if change is not None:
                yield change
        previous_page = page_ids
        if on_page is not None:
            on_page()
    for index, user_id in enumerate(members):
        if not on_site[index]:
            stats.creates += 1
            yield UserChange(user_id, Kind.CREATE, ALL_FIELDS, None)


def _change(site_user: User, current: User | None, stats: DiffStats) -> UserChange | None:
    if current is None:
        if not site_user.in_guild:
            stats.unchanged += 1
            return None
        stats.leaves += 1
        stats.by_field["in_guild"] += 1
        return UserChange(site_user.id, Kind.PATCH, LEFT_FIELDS, site_user, leave=True)
    fields = site_user.differing_fields(current)
    if not fields:
        stats.unchanged += 1
        return None
    stats.updates += 1
    stats.by_field.update(fields)
    return UserChange(site_user.id, Kind.PATCH, fields, site_user)
