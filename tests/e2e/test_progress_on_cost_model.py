"""The live message of the outage's role deletion tells the truth on a site that costs what the
real one does: every edit's percentage is the share of the work the site has really done.

80,000 members all hold the role. The sandbox site runs its cost model (two workers, each
request waits the real site's modelled time: bot/sandbox/site/cost.py) on a clock scaled by
TIME_SCALE (0.4 real seconds per modelled second), so the deletion takes about 9 s instead of
its real 23 s, and the progress interval is 1 s instead of 5 s, so the shorter run still shows
more than five edits. An edit's share lags the site's by the chunks in flight and those that
land while the edit travels; a faster pace lands more of them meanwhile, so the scaled clock
makes the check harder, not easier.

The true share is read from the site's own table at the moment each edit reaches the loopback
Discord: the emulator re-checks a waiter's condition synchronously after every change it stores
(an edit included), and the site runs in this process, so the condition reads the site's rows
before the bot hears back from its edit. The bot's own counters are never read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

import pytest

from bot.sandbox.site.cost import CostConfig
from bot.sandbox.world import DEVELOPERS
from tests.e2e.harness import NO_STARTUP, running_bot

pytestmark = pytest.mark.timeout(180)

MEMBERS = 80_000
TIME_SCALE = 0.4
"""Real seconds per modelled second of the site's workers."""
PROGRESS_INTERVAL = "1"
MIN_EDITS = 5
TOLERANCE_POINTS = 10
TITLE = "Role deletion"
PERCENT = re.compile(r"`\[[█░]+\]` (\d+)%")


@dataclass(frozen=True)
class Edit:
    """One live edit as the loopback Discord stored it, and the site at that moment."""

    text: str
    site_share: float
    """Holders the site no longer lists as holding the role, over all holders at the start."""

    @property
    def shown(self) -> int | None:
        found = PERCENT.search(self.text)
        return int(found[1]) if found else None


async def test_every_live_edit_shows_the_share_of_the_deletion_the_site_has_done(tmp_path):
    cost = CostConfig(model="real", workers=2, time_scale=TIME_SCALE)
    settings = NO_STARTUP | {"SYNC_PROGRESS_INTERVAL": PROGRESS_INTERVAL}
    async with running_bot(
        tmp_path, members=MEMBERS, settings=settings, site_cost=cost, wait_for_startup=False
    ) as h:
        role_id = h.guild.role_id(DEVELOPERS)
        holders = h.site.store.count_holders(role_id)
        assert holders >= MEMBERS - 2  # all but the owner and the bot
        edits: list[Edit] = []
        looks = {"versions": 1, "late": 0}

        def record_each_edit() -> bool:
            """Called by the emulator after every change it stores (so it must not raise: the
            change's sender would get the error); True once the summary is in."""
            live = next(
                (m for m in h.log_messages() if m.versions[0].content.startswith(f"🔄 **{TITLE}")),
                None,
            )
            if live is None or len(live.versions) == looks["versions"]:
                return False
            site_share = (holders - h.site.store.count_holders(role_id)) / holders
            new = live.versions[looks["versions"] :]
            # Each stored edit calls back at once, so one is new; more would be edits whose
            # moment was missed (their share would be read late).
            looks["late"] += len(new) - 1
            looks["versions"] = len(live.versions)
            edits.extend(Edit(version.content, site_share) for version in new)
            return live.content.startswith("✅")

        h.discord.delete_role(h.guild.id, role_id)
        await h.discord.wait_until(record_each_edit, within=120)

        assert looks["late"] == 0
        *progress, summary = edits
        assert summary.text.startswith(f"✅ **{TITLE}**"), summary.text
        assert f"removed the role from {holders:,} users" in summary.text, summary.text
        shown = [edit.shown for edit in progress]
        report = [(edit.shown, round(edit.site_share * 100, 1)) for edit in progress]
        assert len(progress) >= MIN_EDITS, report
        assert None not in shown, [edit.text for edit in progress]  # a bar from the first edit
        for edit in progress:
            assert abs(edit.shown - edit.site_share * 100) <= TOLERANCE_POINTS, report
            if edit.site_share < 1:
                assert "just now" not in edit.text, edit.text
        assert all(a <= b for a, b in pairwise(shown)) and shown[0] < shown[-1], report
        assert h.discord.rate_limit_hits == []
        assert h.site.stats.largest_bulk_patch <= 1000
