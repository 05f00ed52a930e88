"""The real bot and cog, end to end: start-up sync and the moderator commands."""

import pytest

from tests.e2e.harness import running_bot

pytestmark = pytest.mark.timeout(120)


async def test_startup_sync_fills_an_empty_site(tmp_path):
    async with running_bot(tmp_path, members=300, seed_site=False) as h:
        roles = await h.wait_for_summary("Role sync")
        users = await h.wait_for_summary("User sync")
        assert roles.startswith("✅") and "start-up" in roles
        assert users.startswith("✅") and "300 created" in users
        assert await h.mismatches() == []
        assert h.site.stats.largest_request_items <= 1000
        assert h.discord.unimplemented_calls == []
