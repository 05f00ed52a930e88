"""The destructive-diff guard: an automatic sync that would mark many users as left asks first."""

import pytest

from bot.exts.sync.guard import APPLY_ID, CANCEL_ID, DETAILS_ID
from bot.site.records import User
from tests.e2e.harness import running_bot

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
