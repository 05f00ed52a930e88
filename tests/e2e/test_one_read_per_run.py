"""An automatic user sync reads the site's user pages once: the guard's plan and the run share
that pass (on the real site the users endpoint is the one whose pods load has killed)."""

import math

import pytest

from tests.e2e.harness import running_bot, stale_site

pytestmark = pytest.mark.timeout(90)

MEMBERS = 300
PAGE_SIZE = 40
USER_PAGES = "GET /api/bot/users"


async def test_the_start_up_sync_reads_every_user_page_once(tmp_path):
    async with running_bot(
        tmp_path,
        members=MEMBERS,
        seed_site=False,
        prepare=stale_site(every=10),  # 30 stale users: under every guard's limit
        settings={"SYNC_PAGE_SIZE": str(PAGE_SIZE)},
    ) as h:
        summary = await h.wait_for_summary("User sync")
        pages_read = h.site.stats.routes[USER_PAGES].requests
        assert "30 updated" in summary, summary
        assert pages_read == math.ceil(MEMBERS / PAGE_SIZE), f"{pages_read} page reads"
        await h.until_site_matches()
