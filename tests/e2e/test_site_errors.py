"""A site that refuses writes: each failure gets its own message in the log, the run says failed."""

import re

import pytest

from bot.sandbox.site import FaultConfig
from tests.e2e.harness import NO_STARTUP, running_bot, stale_site

pytestmark = pytest.mark.timeout(60)

MEMBERS = 60
SITE_MESSAGE_LIMIT = 300
"""messages.site_message cuts the site's answer to this many characters (plus an ellipsis)."""


async def test_a_chunk_failing_every_retry_is_reported_with_its_user_ids(tmp_path):
    async with running_bot(
        tmp_path,
        members=MEMBERS,
        seed_site=False,
        prepare=stale_site(),
        faults=FaultConfig(reject_writes=True),
        settings=NO_STARTUP | {"SYNC_RETRY_ATTEMPTS": "2"},
    ) as h:
        await h.reply_to(h.say("!sync users"))
        summary = await h.wait_for_summary("User sync")
        assert summary.startswith("❌") and "— failed in" in summary, summary
        assert f"0 updated, 0 marked left, 0 unchanged, {MEMBERS} failed" in summary
        assert "1 failed requests" in summary and "1 errors reported below" in summary

        live, error = h.log_messages()
        assert live.content == summary
        assert error.content.startswith("⚠️ **User sync**: ")
        assert f"{MEMBERS} user(s) could not be written after every retry" in error.content
        said = re.search(r"Site said: `(.*)`", error.content)
        assert said is not None, error.content
        assert "PATCH bot/users/bulk_patch: HTTP 500" in said[1]
        assert "Server Error (500)" in said[1] and "\n" not in said[1], "the page, on one line"
        assert len(said[1]) <= SITE_MESSAGE_LIMIT + 1
        ids = re.search(r"User ids: ([\d, ]+) … and (\d+) more", error.content)
        assert ids is not None, error.content
        shown = [int(i) for i in ids[1].split(", ")]
        assert set(shown) <= set(h.guild.state.members)
        assert len(shown) + int(ids[2]) == MEMBERS
        assert h.site.stats.faults["reject_write"] == 2, "one request, retried once"

        member = h.guild.ordinary_member_id
        h.discord.update_member(h.guild.id, member, nick="Unsaved")
        event_error = await h.wait_for_log(lambda text: "**Member updates**" in text)
        assert "1 user(s) could not be written after every retry" in event_error.content
        assert f"User ids: {member}" in event_error.content
        assert (await h.site_user(member)).display_name != "Unsaved"
