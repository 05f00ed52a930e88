"""Drift repair without a restart: the background reconcile (SYNC_RECONCILE_INTERVAL).

Drift is made on the site itself, behind the bot's back: no Discord event tells the bot about
it, so only a full sync can find it. The interval is set to a fraction of an hour (about 1 s) so
the test sees a few ticks; everything else is the real bot over the loopback Discord.
"""

import pytest

from guild_sync.exts.sync._reporter import is_final_summary
from tests.e2e.harness import running_bot

pytestmark = pytest.mark.timeout(120)

ABOUT_A_SECOND = {"SYNC_RECONCILE_INTERVAL": "0.0003"}  # 1.08 s, in hours as operators write it
RUN_TITLES = ("Role sync", "User sync")


async def test_drift_made_on_the_site_after_start_up_is_repaired_in_the_background(tmp_path):
    async with running_bot(tmp_path, members=40, settings=ABOUT_A_SECOND) as h:
        startup = await h.wait_for_summary("User sync")
        assert startup.startswith("✅") and "start-up" in startup, startup
        assert await h.mismatches() == []

        renamed, left = h.guild.expected_users()[5], h.guild.expected_users()[6]
        store = h.site.store
        store.save_user(store.get_user(renamed.id) | {"display_name": "Drifted On The Site"})
        store.save_user(store.get_user(left.id) | {"in_guild": False})
        # Read from the store, without an await: a tick may come at any await from here on.
        assert store.get_user(renamed.id)["display_name"] == "Drifted On The Site"
        assert not store.get_user(left.id)["in_guild"]

        await h.until_site_matches(within=60)

        assert (await h.site_user(renamed.id)).display_name == renamed.display_name
        assert (await h.site_user(left.id)).in_guild
        # It was a background run that wrote the repair: no moderator typed anything.
        assert h.discord.channel_messages(h.guild.commands_channel_id) == []
        repaired = await h.wait_for_summary("User sync", nth=2)
        assert repaired.startswith("✅") and "· reconcile" in repaired, repaired
        reconciles = [
            text
            for text in h.log_texts()
            if is_final_summary(text, "User sync") and "· reconcile" in text
        ]
        assert any("2 updated" in text for text in reconciles), reconciles
        journalled = await h.cog.book.recent(limit=8)
        assert {(run.kind, run.trigger) for run in journalled} >= {
            ("roles", "reconcile"),
            ("users", "reconcile"),
        }
        # The reconcile says in the log channel only what other automatic runs say: its runs'
        # own messages, nothing of its own (its starts and skips go to the bot's log).
        for text in h.log_texts():
            assert text.startswith(tuple(f"{icon} **{t}**" for icon in "✅🔄" for t in RUN_TITLES))
