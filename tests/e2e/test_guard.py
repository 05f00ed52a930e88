"""The destructive-diff guard: an automatic sync that would mark many users as left asks first."""

from dataclasses import replace

import pytest

from guild_sync.exts.sync._guard import APPLY_ID, CANCEL_ID, DETAILS_ID
from guild_sync.exts.sync._reporter import is_final_summary
from guild_sync.site.records import User
from tests.e2e.harness import NO_STARTUP, running_bot, stale_site

pytestmark = pytest.mark.timeout(60)

MEMBERS = 100
STRANGERS = 30
"""Site users the guild does not have: 30 of 130 (23 %) is above the 10 % limit."""
EPHEMERAL = 64
CHANNEL_MESSAGE = 4


def site_with_strangers(guild, site) -> None:
    """As if the bot saw only part of the guild: the site knows members it cannot see."""
    strangers = (User(1000 + i, f"stranger{i}", "", 0, frozenset(), True) for i in range(STRANGERS))
    site.store.seed([], strangers)


def is_guard_question(text: str) -> bool:
    return text.startswith("🛑 An automatic user sync would")


async def test_guard_holds_the_startup_sync_until_a_moderator_applies_it(tmp_path):
    async with running_bot(
        tmp_path, members=MEMBERS, prepare=site_with_strangers, wait_for_startup=False
    ) as h:
        question = await h.wait_for_log(is_guard_question)
        assert f"mark {STRANGERS} of {MEMBERS + STRANGERS} users as left" in question.content
        assert question.custom_ids() == {APPLY_ID, DETAILS_ID, CANCEL_ID}
        click = {"channel_id": h.guild.log_channel_id}

        outsider = h.guild.ordinary_member_id
        refused = await h.discord.click_button(question.id, APPLY_ID, member_id=outsider, **click)
        assert refused.callback.type == CHANNEL_MESSAGE
        assert refused.callback.data["flags"] & EPHEMERAL
        assert refused.callback.data["content"] == "Only moderators can answer this."

        moderator = h.guild.moderator_id
        details = await h.discord.click_button(
            question.id, DETAILS_ID, member_id=moderator, **click
        )
        assert details.callback.data["flags"] & EPHEMERAL
        assert details.callback.data["content"].startswith(
            f"Would create 0, update 0, mark {STRANGERS} as left; {MEMBERS} unchanged"
        )
        assert not h.cog.startup_done.is_set()
        assert h.site_writes() == 0, "the guard wrote before anyone answered"
        assert len(await h.mismatches()) == STRANGERS

        await h.discord.click_button(question.id, APPLY_ID, member_id=moderator, **click)
        summary = await h.wait_for_summary("User sync")
        assert summary.startswith("✅") and f"{STRANGERS} marked left" in summary
        assert await h.mismatches() == []
        assert any(
            t.startswith("Guard for the automatic user sync: applied by member000001")
            for t in h.log_texts()
        )
        assert question.custom_ids() == set(), "the answered question keeps no buttons"


async def test_guard_cancels_when_nobody_answers(tmp_path):
    async with running_bot(
        tmp_path,
        members=MEMBERS,
        prepare=site_with_strangers,
        settings={"SYNC_GUARD_TIMEOUT": "1"},
    ) as h:
        assert any(is_guard_question(t) for t in h.log_texts())
        assert "Guard for the automatic user sync: cancelled: nobody answered in time." in (
            h.log_texts()
        )
        assert not any("**User sync**" in t for t in h.log_texts()), "no user run started"
        assert h.site_writes() == 0
        assert len(await h.mismatches()) == STRANGERS
        question = next(m for m in h.log_messages() if is_guard_question(m.content))
        assert question.custom_ids() == set(), "an expired question keeps no live buttons"


def site_without_everyone(guild, site) -> None:
    """A convention mismatch: the site's records leave @everyone (the guild's id) out of every
    member's roles, so a user sync would rewrite every member's roles."""
    users = [replace(user, roles=user.roles - {guild.id}) for user in guild.expected_users()]
    site.store.seed(guild.expected_roles(), users)


async def test_guard_asks_before_an_automatic_run_rewrites_every_members_roles(tmp_path):
    async with running_bot(
        tmp_path,
        members=MEMBERS,
        seed_site=False,
        prepare=site_without_everyone,
        wait_for_startup=False,
    ) as h:
        question = await h.wait_for_log(is_guard_question)
        assert f"write roles for {MEMBERS} of {MEMBERS} users (100%, limit 25%)" in question.content
        assert "convention" in question.content
        click = {"channel_id": h.guild.log_channel_id}
        moderator = h.guild.moderator_id
        details = await h.discord.click_button(
            question.id, DETAILS_ID, member_id=moderator, **click
        )
        shown = details.callback.data["content"]
        assert shown.startswith(f"Would create 0, update {MEMBERS}, mark 0 as left")
        assert f"Fields: roles {MEMBERS} (100%)" in shown
        # A sample of the differences: the site's roles, then the guild's, with @everyone.
        sample = [line for line in shown.splitlines() if line.startswith("• update `")]
        assert sample and all("roles: [" in line and str(h.guild.id) in line for line in sample)
        assert h.site_writes() == 0, "the guard wrote before anyone answered"

        await h.discord.click_button(question.id, CANCEL_ID, member_id=moderator, **click)
        await h.wait_for_log(lambda t: t.startswith("Guard for the automatic user sync: cancel"))
        await h.cog.startup_done.wait()
        assert h.site_writes() == 0
        assert len(await h.mismatches()) == MEMBERS


async def test_a_moderators_run_shows_its_field_counts_and_is_not_asked(tmp_path):
    """A command is its own confirmation, but its live message shows the counts per field the
    run's own pass over the site has found (there is no separate read before writing)."""
    async with running_bot(
        tmp_path, members=MEMBERS, seed_site=False, prepare=stale_site(every=2), settings=NO_STARTUP
    ) as h:
        h.say("!sync users")
        summary = await h.wait_for_summary("User sync")
        assert summary.startswith("✅") and f"{MEMBERS // 2} updated" in summary
        assert f"Fields: display_name {MEMBERS // 2} (50%)" in summary
        assert not any(is_guard_question(t) for t in h.log_texts())
        [live] = [m for m in h.log_messages() if is_final_summary(m.content, "User sync")]
        # Every version past "Comparing…" (the pass has read a page) shows the counts so far.
        shown = [v.content for v in live.versions if "comparing" not in v.content.lower()]
        assert shown and all("Fields" in text for text in shown), shown
        assert await h.mismatches() == []
