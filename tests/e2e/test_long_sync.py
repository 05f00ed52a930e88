"""A 20,000-member user sync long enough to watch: live edits, and members changing meanwhile."""

import re
from itertools import pairwise

import pytest

from bot.sandbox.site import FaultConfig
from guild_sync.exts.sync._reporter import FIRST_EDIT_S
from tests.e2e.harness import NO_STARTUP, eventually, running_bot, stale_site

pytestmark = pytest.mark.timeout(120)

MEMBERS = 20_000
MIN_EDIT_GAP_S = 5.0
CLOCK_SLACK_S = 0.05
"""The bot times its edits by its own clock, the emulator stamps them on arrival."""


async def test_live_message_and_member_updates_during_a_long_sync(tmp_path):
    slow_writes = FaultConfig(slow=1.0, slow_delay=0.5, write_only=True)
    async with running_bot(
        tmp_path,
        members=MEMBERS,
        seed_site=False,
        prepare=stale_site(),
        faults=slow_writes,
        settings=NO_STARTUP | {"SYNC_MAX_IN_FLIGHT": "1", "SYNC_PROGRESS_INTERVAL": "5"},
    ) as h:
        member_ids = sorted(h.guild.state.members)
        early, late = member_ids[10], member_ids[-10]
        await h.reply_to(h.say("!sync users"))
        await eventually(lambda: bool(h.cog.runs.active))
        run = next(iter(h.cog.runs.active.values()))
        await eventually(lambda: run.reporter.meter.done >= 2000)
        h.discord.update_member(h.guild.id, early, nick="Changed early")
        h.discord.update_member(h.guild.id, late, nick="Changed late")
        assert len(await h.mismatches()) > MEMBERS // 2, "the sync was not long enough"

        summary = await h.wait_for_summary("User sync", within=90)
        assert summary.startswith("✅") and "0 created" in summary and "0 failed" in summary
        # A member changed by an event before the diff reached them counts as unchanged.
        updated = re.search(r"([\d,]+) updated, 0 marked left, ([\d,]+) unchanged", summary)
        assert updated is not None, summary
        assert MEMBERS - 2 <= int(updated[1].replace(",", "")) <= MEMBERS, summary
        await h.until_site_matches()
        assert (await h.site_user(early)).display_name == "Changed early"
        assert (await h.site_user(late)).display_name == "Changed late"
        assert h.site.stats.largest_bulk_patch <= 1000

        live = h.log_messages()[0]
        assert live.content == summary
        progress = [v for v in live.versions[1:-1] if "users" in v.content]
        assert len(progress) >= 2, [v.content for v in live.versions]
        assert any("/s" in v.content and "done" in v.content for v in progress)
        stamps = [v.at for v in live.versions]
        first, *gaps = [(b - a).total_seconds() for a, b in pairwise(stamps)]
        # The first numbers a second after the post, then one edit per interval.
        assert FIRST_EDIT_S - CLOCK_SLACK_S <= first < MIN_EDIT_GAP_S, first
        assert min(gaps) >= MIN_EDIT_GAP_S - CLOCK_SLACK_S, gaps
        assert h.discord.rate_limit_hits == []
