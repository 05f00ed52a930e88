"""A reconnect that cannot resume: discord.py identifies again and builds new `Guild` objects.

The loopback Discord forgets every session (`invalidate_sessions`) and cuts the socket: the
bot's RESUME is answered INVALID_SESSION (d=false), it identifies again (after discord.py's own
5 s identify wait) and gets a fresh READY. What the bot reads from then on must be that new
cache, and what Discord sent while it was away (nothing is replayed) must be reconciled.
"""

import pytest

from bot.sandbox.sandbox import BULK_PATCH
from bot.sandbox.world import HELPERS
from tests.e2e.harness import NO_STARTUP, eventually, running_bot, stale_site

pytestmark = pytest.mark.timeout(90)

RECONCILING = "reconnected without resume: reconciling"


def ordinary_unnamed(h, count: int) -> list[int]:
    protected = h.guild.protected_ids()
    return [
        m.id for m in h.guild.state.members.values() if m.nick is None and m.id not in protected
    ][:count]


async def lose_the_session(h) -> int:
    """Forget the bot's session and drop its socket; the IDENTIFY count before it."""
    identifies = h.discord.gateway_stats.identifies
    h.discord.invalidate_sessions()
    assert h.discord.drop_gateway() == 1
    return identifies


async def until_identified_again(h, identifies: int) -> None:
    stats = h.discord.gateway_stats
    await h.discord.wait_until(lambda: stats.identifies > identifies, within=30)
    assert (stats.resumes, stats.invalid_sessions) == (0, 1), "the session was resumable"


async def test_after_a_fresh_ready_a_nickname_change_and_a_join_reach_the_site(tmp_path):
    async with running_bot(tmp_path, members=50) as h:
        guild_id = h.guild.id
        first_cache = h.bot.get_guild(guild_id)
        identifies = await lose_the_session(h)
        await until_identified_again(h, identifies)

        def new_cache_loaded() -> bool:
            guild = h.bot.get_guild(guild_id)
            return guild is not None and guild is not first_cache and guild.chunked

        await eventually(new_cache_loaded)
        renamed = ordinary_unnamed(h, 1)[0]
        h.discord.update_member(guild_id, renamed, nick="Renamed After Ready")
        newcomer = h.discord.add_member(
            guild_id, "joined.after.ready", roles=[h.guild.role_id(HELPERS)]
        )
        await h.until_site_matches(within=20)

        assert (await h.site_user(renamed)).display_name == "Renamed After Ready"
        joined = await h.site_user(newcomer.id)
        assert joined.in_guild and joined.name == "joined.after.ready"
        assert joined.roles == {guild_id, h.guild.role_id(HELPERS)}


async def test_members_who_changed_while_the_bot_was_away_are_reconciled(tmp_path):
    async with running_bot(tmp_path, members=50) as h:
        guild_id = h.guild.id
        leaver, renamed = ordinary_unnamed(h, 2)
        identifies = await lose_the_session(h)
        # No await since the drop: the bot cannot hear these, and no session keeps them.
        h.discord.update_member(guild_id, renamed, nick="Renamed While Away")
        h.discord.remove_member(guild_id, leaver)
        newcomer = h.discord.add_member(guild_id, "joined.while.away")
        await until_identified_again(h, identifies)

        told = await h.wait_for_log(lambda text: RECONCILING in text.lower())
        assert told.content.startswith("🔌"), told.content
        synced = await h.wait_for_summary("User sync", nth=2)
        assert synced.startswith("✅") and "reconnect" in synced, synced
        await h.until_site_matches()
        assert h.discord.gateway_stats.replayed == 0, "events were replayed: not a fresh session"
        assert (await h.site_user(renamed)).display_name == "Renamed While Away"
        assert (await h.site_user(leaver)).in_guild is False
        assert (await h.site_user(newcomer.id)).in_guild
        roles = [t for t in h.log_texts() if t.startswith("✅ **Role sync** — ")]
        assert len(roles) == 2, "the reconcile syncs roles before users"


async def test_a_run_in_progress_is_stopped_and_done_again_on_the_new_cache(tmp_path):
    # A fifth of the users stale: what the stopped run leaves stays under the guard's share
    # of updates, so the reconcile's automatic user sync need not ask a moderator.
    settings = NO_STARTUP | {"SYNC_CHUNK_SIZE": "5"}
    async with running_bot(
        tmp_path, members=200, seed_site=False, prepare=stale_site(every=5), settings=settings
    ) as h:
        guild_id = h.guild.id
        renamed = ordinary_unnamed(h, 1)[0]
        h.site.hold.arm(BULK_PATCH, 10)
        h.say("!sync users")
        await eventually(lambda: h.site.hold.tripped and h.site.hold.waiting > 0)
        assert 0 < h.site.hold.items_before < 40, "not held mid-run"
        identifies = await lose_the_session(h)
        h.discord.update_member(guild_id, renamed, nick="Renamed While Away")
        await until_identified_again(h, identifies)
        # The bot has seen the fresh READY and stopped the run (its requests still held).
        await eventually(lambda: h.cog.sessions_replaced == 1)
        h.site.hold.release()

        stopped = await h.wait_for_summary("User sync", nth=1)
        assert stopped.startswith("⏹️"), stopped
        told = await h.wait_for_log(lambda text: RECONCILING in text.lower())
        assert "stopped" in told.content.lower(), told.content
        again = await h.wait_for_summary("User sync", nth=2)
        assert again.startswith("✅") and "reconnect" in again, again
        await h.until_site_matches()
        assert (await h.site_user(renamed)).display_name == "Renamed While Away"
