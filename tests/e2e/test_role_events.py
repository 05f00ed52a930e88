"""Role events: a created or changed role reaches the site; a deleted one is stripped, then gone."""

import asyncio

import pytest

from tests.e2e.harness import NO_STARTUP, running_bot

pytestmark = pytest.mark.timeout(90)

HOSTILE_NAME = "@everyone **x**"
ESCAPED_NAME = "@\u200beveryone \\*\\*x\\*\\*"
"""How the log must render HOSTILE_NAME: no ping (zero-width space), no bold."""


async def test_role_create_update_and_delete(tmp_path):
    async with running_bot(tmp_path, members=60, settings=NO_STARTUP) as h:
        guild_id = h.guild.id
        role = h.discord.create_role(guild_id, HOSTILE_NAME, colour=0x123456)
        await eventually_async(lambda: site_has_role(h, role.id))
        site_roles = {r.id: r for r in await h.client.list_roles()}
        assert site_roles[role.id].name == HOSTILE_NAME
        assert site_roles[role.id].colour == 0x123456

        holders = [m for m in h.guild.state.members if m not in h.guild.protected_ids()][:25]
        for member_id in holders:
            current = h.guild.state.members[member_id].roles
            h.discord.update_member(guild_id, member_id, roles=[*current, role.id])
        h.discord.update_role(guild_id, role.id, colour=0xABCDEF, permissions=8)
        await h.until_site_matches()
        site_role = next(r for r in await h.client.list_roles() if r.id == role.id)
        assert (site_role.colour, site_role.permissions) == (0xABCDEF, 8)
        assert all(role.id in user.roles for user in await site_users(h, holders))

        h.discord.delete_role(guild_id, role.id)
        deleted = await h.wait_for_summary("Role deletion")
        assert deleted.startswith("✅"), deleted
        assert f"removed the role from {len(holders)} users, then deleted it" in deleted
        assert ESCAPED_NAME in deleted and "@everyone" not in deleted
        assert role.id not in {r.id for r in await h.client.list_roles()}
        assert h.site.stats.role_cascade_users == 0, "the site's per-user cascade ran"
        await h.until_site_matches()
        assert all(role.id not in user.roles for user in await site_users(h, holders))


async def site_users(h, user_ids):
    return [await h.site_user(user_id) for user_id in user_ids]


async def test_role_given_right_after_its_creation_reaches_the_site(tmp_path):
    """A role event is written at once, not behind a run holding the roles lock, so the
    member update naming it (sent after the queue's linger) finds it on the site."""
    async with running_bot(tmp_path, members=20, settings=NO_STARTUP) as h:
        h.say("!sync roles")  # a run holding the roles lock while the events arrive
        first = h.discord.create_role(h.guild.id, "First")
        second = h.discord.create_role(h.guild.id, "Second")
        member = h.guild.ordinary_member_id
        held = h.guild.state.members[member].roles
        h.discord.update_member(h.guild.id, member, roles=[*held, first.id, second.id])
        await h.until_site_matches(within=5)
        assert {first.id, second.id} <= (await h.site_user(member)).roles
        assert not [t for t in h.log_texts() if t.startswith("⚠️")]


async def site_has_role(h, role_id: int) -> bool:
    return role_id in {role.id for role in await h.client.list_roles()}


async def eventually_async(condition, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
