"""Requests the site would take otherwise than meant (a body id other than the URL's, a role id
twice in `roles`): the sandbox counts them, and the bot's client and engine send none."""

from __future__ import annotations

import asyncio

from bot.sandbox.site import SandboxSite
from guild_sync.site.records import Role, User
from tests.engine.conftest import close_rig, make_rig
from tests.sandbox_site.conftest import Api, role_json, user_json


async def test_the_site_counts_each_kind_it_would_misread(api: Api, site: SandboxSite) -> None:
    await api.ok("POST", "bot/roles", role_json(1))
    await api.ok("POST", "bot/users", [user_json(1), user_json(2, roles=[1, 1])])  # 1
    await api.ok("POST", "bot/users", user_json(3, roles=[1, 1]))  # 2
    await api.ok("PATCH", "bot/users/bulk_patch", [{"id": 1, "roles": [1, 1]}])  # 3
    await api.ok("PATCH", "bot/users/1", {"id": 1, "roles": [1, 1]})  # 4
    await api.ok("PATCH", "bot/users/1", {"id": 4})  # body id 1
    await api.ok("PUT", "bot/roles/1", role_json(2))  # body id 2
    await api.call("PATCH", "bot/roles/1", {"id": 2})  # body id 3 (refused: 2 exists)
    # Not misreadable: ids equal to the URL's, roles without repeats.
    await api.ok("PUT", "bot/roles/1", role_json(1))
    await api.ok("PATCH", "bot/users/1", {"id": 1, "roles": [1]})
    await api.ok("PATCH", "bot/users/bulk_patch", [{"id": 1, "roles": [1]}])
    # Refused, but sent all the same: counted.
    await api.call("PATCH", "bot/users/bulk_patch", [{"id": 1, "roles": [1, 1], "name": ""}])
    await api.call("PUT", "bot/users/1", {"id": 5, "name": "x"})
    stats = await api.ok("GET", "_sandbox/stats")
    assert stats["misreadable_requests"] == {"duplicate_role_ids": 5, "body_id_differs": 4}


async def test_the_bots_client_and_engine_never_send_one() -> None:
    rig, site = await make_rig(chunk_size=3, max_in_flight=2, page_size=4)
    try:
        site_roles = [Role(i, f"role {i}", 0, 0, i % 2) for i in range(1, 6)]
        site_users = [User(i, f"u{i}", "", 0, frozenset({1, 2, i % 5 + 1})) for i in range(1, 12)]
        rig.seed(site_roles, site_users)
        # Written by someone else: a repeated role id the bot reads as a set.
        site.store.save_user({**user_json(20, roles=[3, 3, 1]), "display_name": ""})
        for role in site_roles[1:]:
            rig.guild.add_role(Role(role.id, f"{role.name}!", 1, 0, 7 - role.id))
        rig.guild.add_role(Role(9, "new", 0, 0, 0))
        for user in site_users[2:]:
            rig.guild.add_member(User(user.id, f"{user.name}x", "nick", 0, user.roles | {9}))
        rig.guild.add_member(User(20, "twenty", "", 0, frozenset({3, 9})))
        rig.guild.add_member(User(30, "new", "", 0, frozenset({2, 9})))

        reports = [await asyncio.wait_for(rig.engine.sync_roles(), 10)]
        reports.append(await asyncio.wait_for(rig.engine.sync_users(), 10))
        rig.guild.add_role(Role(3, "renamed", 5, 0, 1))
        await asyncio.wait_for(rig.engine.write_role(3), 10)
        rig.guild.remove_role(4)
        reports.append(await asyncio.wait_for(rig.engine.delete_role(4), 10))
        await asyncio.wait_for(rig.engine.flush(), 10)

        assert [report.status for report in reports] == ["finished"] * 3
        assert site.stats.by_route["PUT /api/bot/roles/{id}"] >= 4
        assert site.stats.bulk_patch_items > 0
        assert site.stats.snapshot()["misreadable_requests"] == {}
        assert rig.mismatches() == []
        assert site.store.get_user(20)["roles"] == [3, 9]  # the repeat is gone, not copied
    finally:
        await close_rig(rig)
