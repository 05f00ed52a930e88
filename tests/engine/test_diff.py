"""Branch logic of the streamed diff, fed pages by a stand-in for the client's page iterator."""

from collections.abc import AsyncIterator

import pytest

from guild_sync.engine.diff import DiffStats, Kind, PageOrderError, iter_user_changes
from guild_sync.engine.guild import InMemoryGuild
from guild_sync.engine.roles import diff_roles
from guild_sync.site.records import Role, User


class Pages:
    """Only `iter_user_pages`, which is all the diff reads from the client."""

    def __init__(self, *pages: list[User]) -> None:
        self.pages = pages

    async def iter_user_pages(self, page_size: int) -> AsyncIterator[list[User]]:
        for page in self.pages:
            yield page


def user(user_id: int, name: str = "ann", in_guild: bool = True) -> User:
    return User(user_id, name, "", 1, frozenset(), in_guild)


async def changes(guild: InMemoryGuild, *pages: list[User]) -> tuple[list, DiffStats]:
    stats = DiffStats()
    found = [c async for c in iter_user_changes(Pages(*pages), guild, 2, stats)]  # type: ignore[arg-type]
    return [(c.user_id, c.kind, set(c.fields)) for c in found], stats


async def test_merge_finds_updates_leaves_and_creates_in_one_pass() -> None:
    guild = InMemoryGuild([], [user(1), user(2, "bob"), user(5), user(9)])
    found, stats = await changes(
        guild,
        [user(1), user(2)],
        [user(3), user(4, in_guild=False)],
        [user(9)],
    )
    assert found == [
        (2, Kind.PATCH, {"name"}),
        (3, Kind.PATCH, {"in_guild"}),
        (5, Kind.CREATE, {"name", "display_name", "discriminator", "roles", "in_guild"}),
    ]
    assert (stats.unchanged, stats.updates, stats.leaves, stats.creates) == (3, 1, 1, 1)


async def test_a_page_out_of_order_fails_the_run() -> None:
    with pytest.raises(PageOrderError, match="ascending"):
        await changes(InMemoryGuild(), [user(2), user(1)])


async def test_pages_going_backwards_fail_the_run() -> None:
    with pytest.raises(PageOrderError, match="went back"):
        await changes(InMemoryGuild(), [user(5), user(6)], [user(1), user(2)])


async def test_a_row_inserted_during_the_walk_shifts_the_next_page_harmlessly() -> None:
    guild = InMemoryGuild([], [user(1), user(2), user(3)])
    found, stats = await changes(guild, [user(1), user(2)], [user(2), user(3)])
    assert found == []
    assert stats.scanned == 3


def test_role_diff_separates_creates_updates_and_deletes() -> None:
    kept, renamed, new, gone = (Role(i, f"r{i}", 0, 0, i) for i in range(4))
    result = diff_roles([kept, Role(1, "renamed", 0, 0, 1), new], [kept, renamed, gone])
    assert result.created == (new,)
    assert result.updated == (Role(1, "renamed", 0, 0, 1),)
    assert result.deleted == (3,)
