"""Leavers verified before they are written: before a user sync marks users as left it fetches a
random sample of them (up to 50) from Discord; if one is still a member, the bot's member list
is incomplete and nobody is marked as left.

The partial cache is one discord.py cannot tell from a whole one: the loopback Discord leaves
the members out of GUILD_CREATE, its member_count and the member chunks (`hide_from_gateway`),
so `guild.chunked` is true, while GET /guilds/{id}/members/{user_id} still answers for them.
"""

import pytest

from guild_sync.site.records import User
from tests.e2e.harness import NO_STARTUP, running_bot

pytestmark = pytest.mark.timeout(60)

MEMBERS = 200
HIDDEN = MEMBERS * 15 // 100
"""Members missing from the bot's cache: 15% of the guild, fewer than the sample's 50, so the
sample is every one of them and the test does not depend on the draw."""
FETCH_MEMBER = "GET /api/v10/guilds/{guild_id}/members/{user_id}"


def hidden_members(guild) -> list[int]:
    """Ordinary members (not the owner, the bot or the moderator), the last 15% by id."""
    keep = {guild.state.owner_id, guild.discord.bot_user.id, guild.moderator_id}
    return sorted(set(guild.state.members) - keep)[-HIDDEN:]


def cache_missing_members(guild, site) -> None:
    guild.discord.hide_from_gateway(guild.id, hidden_members(guild))


async def test_a_moderators_run_on_a_cache_missing_15_percent_marks_nobody_as_left(tmp_path):
    async with running_bot(
        tmp_path, members=MEMBERS, prepare=cache_missing_members, settings=NO_STARTUP
    ) as h:
        hidden = hidden_members(h.guild)
        cached = h.bot.get_guild(h.guild.id)
        assert cached.chunked and len(cached.members) == MEMBERS - HIDDEN, "the premise"

        h.say("!sync users")
        summary = await h.wait_for_summary("User sync")
        # Read from the site over HTTP: every hidden member is still in the guild there.
        assert [(await h.site_user(user_id)).in_guild for user_id in hidden] == [True] * HIDDEN
        assert all(user.in_guild for user in h.site.store.all_users())
        assert await h.mismatches() == []
        assert h.discord.rest_stats.calls[FETCH_MEMBER] == HIDDEN

        assert summary.startswith("⚠️") and "0 marked left" in summary
        [said] = [t for t in h.log_texts() if "nobody was marked as left" in t]
        assert f"{HIDDEN} of the {HIDDEN} users" in said and "still members" in said
        assert "`!sync users` again once" in said


async def test_leavers_discord_no_longer_has_are_checked_then_marked_left(tmp_path):
    strangers = [User(1000 + i, f"gone{i}", "", 0, frozenset(), True) for i in range(20)]

    def site_with_former_members(guild, site) -> None:
        site.store.seed([], strangers)

    async with running_bot(
        tmp_path, members=MEMBERS, prepare=site_with_former_members, settings=NO_STARTUP
    ) as h:
        h.say("!sync users")
        summary = await h.wait_for_summary("User sync")
        assert summary.startswith("✅") and "20 marked left" in summary
        assert [(await h.site_user(u.id)).in_guild for u in strangers] == [False] * 20
        assert h.discord.rest_stats.calls[FETCH_MEMBER] == 20, "each asked once: 404"
        assert not any("nobody was marked as left" in t for t in h.log_texts())
        assert await h.mismatches() == []
