"""The store's bulk paths used outside HTTP: seeding, and the readers for consistency checks."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bot.sandbox.site import SandboxSite, SiteStore
from guild_sync.site.records import Role, User
from tests.sandbox_site.conftest import Api


def _users(count: int) -> list[User]:
    return [
        User(i, f"u{i}", f"U {i}", i % 10000, frozenset({1, 2} if i % 2 else ()), i % 3 != 0)
        for i in range(1, count + 1)
    ]


def test_seed_then_read_back(tmp_path: Path) -> None:
    roles = [Role(1, "a", 1, 2, 3), Role(2, "b", 0, 0, 9)]
    users = _users(500)
    store = SiteStore(str(tmp_path / "seed.db"))
    store.seed(roles, users)
    store.close()
    reopened = SiteStore(str(tmp_path / "seed.db"))
    assert reopened.count_users() == 500
    assert reopened.all_roles() == roles
    assert list(reopened.all_users()) == users


async def test_seeded_users_are_served_in_pages() -> None:
    store = SiteStore()
    store.seed([Role(1, "a", 0, 0, 0), Role(2, "b", 0, 0, 1)], _users(7_500))
    async with SandboxSite(store=store) as site, aiohttp.ClientSession() as session:
        api = Api(session, site.url)
        last = await api.ok("GET", "bot/users", params={"page": 3})
        assert last["count"] == 7_500
        assert (last["previous_page_no"], last["next_page_no"]) == (2, None)
        assert last["results"][-1] == {
            "id": 7500,
            "name": "u7500",
            "display_name": "U 7500",
            "discriminator": 7500,
            "roles": [],
            "in_guild": False,
        }
        ids = [u["id"] for u in (await api.ok("GET", "bot/users", params={"page": 2}))["results"]]
        assert ids == list(range(2501, 5001))
