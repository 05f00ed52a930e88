"""The real site's data, as python-discord/bot's syncer wrote it: the bot must find nothing to do.

Upstream stores every member's roles as `[role.id for role in member.roles]`, which includes the
guild's default role (@everyone). A bot that wrote roles any other way would rewrite every user
on its first start against the real site.
"""

import pytest

from bot.sandbox.world import DEVELOPERS, upstream_users
from tests.e2e.harness import running_bot

pytestmark = pytest.mark.timeout(90)

MEMBERS = 120
FORMER = 15
"""Users who left the guild before: upstream kept their last roles, with in_guild false."""


def upstream_site(guild, site) -> None:
    site.store.seed(guild.expected_roles(), upstream_users(guild, former_members=FORMER))


async def test_startup_and_commands_write_nothing_to_the_upstream_syncers_records(tmp_path):
    async with running_bot(tmp_path, members=MEMBERS, seed_site=False, prepare=upstream_site) as h:
        roles = await h.wait_for_summary("Role sync")
        users = await h.wait_for_summary("User sync")
        assert roles.startswith("✅") and users.startswith("✅"), (roles, users)
        assert h.site_writes() == 0, dict(h.site.stats.by_route)

        await h.reply_to(h.say("!sync users"))
        assert (await h.wait_for_summary("User sync", nth=2)).startswith("✅")
        await h.reply_to(h.say("!sync roles"))
        assert (await h.wait_for_summary("Role sync", nth=2)).startswith("✅")
        writes = {
            route: stats.requests
            for route, stats in h.site.stats.routes.items()
            if route.split(" ", 1)[0] in ("POST", "PUT", "PATCH", "DELETE")
        }
        assert writes == {}, writes
        assert h.site_writes() == 0

        # Upstream's own expression on discord.py's members, read back from the site.
        guild = h.bot.get_guild(h.guild.id)
        assert guild is not None and guild.chunked
        for member in guild.members:
            stored = await h.site_user(member.id)
            assert stored.roles == {role.id for role in member.roles}
            assert guild.id in stored.roles
        assert await h.mismatches() == []

        # A role deletion strips only that role: @everyone stays, for former members too.
        developers = h.guild.role_id(DEVELOPERS)
        h.discord.delete_role(h.guild.id, developers)
        done = await h.wait_for_summary("Role deletion")
        assert done.startswith("✅"), done
        assert h.site.stats.role_cascade_users == 0
        async for page in h.client.iter_user_pages():
            for user in page:
                assert developers not in user.roles and h.guild.id in user.roles, user
        assert await h.mismatches() == []
