"""Discord's gateway misbehaving around the member list: a rate-limited member request, a guild
that arrives late or goes away mid-run, member chunks at a pace with joins and leaves between
them, a session lost (close 4009) while the member list loads.

What must hold every time: no user sync runs on a partial member list, the start-up happens
however late the guild comes, runs pause while the guild is unavailable, and the site ends
equal to the guild. Faults are placed by the emulator's switches and gates, never by timing.
"""

import logging

import pytest

from bot.sandbox.sandbox import BULK_PATCH
from tests.e2e.harness import NO_STARTUP, eventually, running_bot, stale_site

pytestmark = pytest.mark.timeout(90)

RATE_LIMITED_TOLD = "rate limited"
CHUNK_SIZE = 1000


def ordinary_ids(h) -> list[int]:
    protected = h.guild.protected_ids()
    return [m for m in h.guild.state.members if m not in protected]


async def test_a_rate_limited_member_request_is_asked_again_and_the_start_up_sync_runs(tmp_path):
    """Another process of the bot asked for every member just before this one started: Discord
    answers discord.py's request with RATE_LIMITED, which discord.py ignores, and it reports
    ready with only the bot cached. The cog sees the list is still partial, says so, waits out
    `retry_after` and asks again; only then does the start-up sync run."""

    def asked_just_before(guild, site) -> None:
        guild.discord.limit_member_requests(3.0)
        guild.discord.note_member_request(guild.id)

    async with running_bot(
        tmp_path, members=600, prepare=asked_just_before, wait_for_ready=False
    ) as h:
        await eventually(lambda: h.cog.startup_done.is_set(), within=60)
        stats = h.discord.gateway_stats
        [limited] = stats.rate_limited
        assert [r.rate_limited for r in stats.member_requests] == [True, False]
        told = await h.wait_for_log(lambda text: RATE_LIMITED_TOLD in text.lower())
        assert told.content.startswith("⚠️"), told.content
        assert f"retry after {limited.retry_after:.1f} s" in told.content, told.content
        summary = await h.wait_for_summary("User sync")
        assert summary.startswith("✅") and " 0 marked left" in summary, summary
        assert len(h.bot.get_guild(h.guild.id).members) == 600
        await h.until_site_matches()


async def test_the_start_up_happens_when_the_guild_arrives_after_the_chunking_timeout(
    tmp_path, caplog
):
    """READY lists the guild unavailable and its GUILD_CREATE comes only when the test says,
    after SYNC_CHUNKING_TIMEOUT: the bot says it is still waiting, and starts once it comes."""

    def withheld(guild, site) -> None:
        guild.discord.make_guild_unavailable(guild.id)

    caplog.set_level(logging.WARNING, logger="guild_sync.exts.sync._cog")
    async with running_bot(
        tmp_path,
        members=300,
        seed_site=False,
        prepare=withheld,
        settings={"SYNC_CHUNKING_TIMEOUT": "1"},
        wait_for_ready=False,
    ) as h:

        def waiting_logged() -> bool:
            return any("did not finish loading" in r.getMessage() for r in caplog.records)

        await eventually(waiting_logged)
        assert h.bot.get_guild(h.guild.id).unavailable and not h.cog.startup_done.is_set()
        h.discord.make_guild_available(h.guild.id)
        await eventually(lambda: h.cog.startup_done.is_set())
        summary = await h.wait_for_summary("User sync")
        assert summary.startswith("✅") and "300 created" in summary, summary
        await h.until_site_matches()


async def test_an_outage_mid_run_pauses_it_and_it_finishes_after_the_guild_is_back(tmp_path):
    settings = NO_STARTUP | {"SYNC_CHUNK_SIZE": "5"}
    async with running_bot(
        tmp_path, members=300, seed_site=False, prepare=stale_site(every=5), settings=settings
    ) as h:
        h.site.hold.arm(BULK_PATCH, 10)
        h.say("!sync users")
        await eventually(lambda: h.site.hold.tripped and h.site.hold.waiting > 0)
        assert 0 < h.site.hold.items_before < 60, "not held mid-run"
        h.discord.make_guild_unavailable(h.guild.id)
        await eventually(lambda: not h.cog.ready.is_set())  # the bot saw the outage: paused
        assert h.cog.runs.active, "the run was stopped, not paused"
        h.site.hold.release()
        await eventually(lambda: h.site.hold.waiting == 0)
        # Paused: the writes it queues are not sent, so it cannot finish while the guild is away.
        assert not [t for t in h.log_texts() if t.startswith("✅ **User sync**")]
        h.discord.make_guild_available(h.guild.id)
        summary = await h.wait_for_summary("User sync")
        assert summary.startswith("✅"), summary
        told = await h.wait_for_log(lambda text: "unavailable" in text.lower())
        assert told.content.startswith("⏸️"), told.content
        await h.until_site_matches()
        assert h.discord.gateway_stats.dispatched["GUILD_DELETE"] == 1


async def test_slow_chunks_with_joins_and_leaves_between_them_load_the_whole_guild(tmp_path):
    """The first chunk arrives, the rest wait at the gate until discord.py has given up on them
    (its chunk timeout) and reported ready; members join, leave and change meanwhile. The cog
    waits for the rest, and the start-up sync sees exactly the guild."""

    def slow(guild, site) -> None:
        guild.discord.pace_chunks(0.2)
        guild.discord.hold_chunks(after=1)

    async with running_bot(
        tmp_path, members=3 * CHUNK_SIZE, prepare=slow, wait_for_ready=False
    ) as h:
        await h.discord.wait_until(lambda: h.discord.chunks_held, within=30)
        ids = ordinary_ids(h)
        delivered, held = ids[10:20], ids[-10:]
        for user_id in delivered[:3] + held[:3]:
            h.discord.remove_member(h.guild.id, user_id)
        for user_id in delivered[3:6] + held[3:6]:
            h.discord.update_member(h.guild.id, user_id, nick=f"changed {user_id}")
        newcomer = h.discord.add_member(h.guild.id, "joined.during.chunking")
        await eventually(lambda: h.cog._started)  # discord.py said ready on a partial cache
        h.discord.release_chunks()
        await eventually(lambda: h.cog.startup_done.is_set(), within=60)
        summary = await h.wait_for_summary("User sync")
        assert summary.startswith("✅") and " 6 marked left" in summary, summary
        assert "1 created" in summary, summary
        await h.until_site_matches()
        assert (await h.site_user(newcomer.id)).in_guild
        assert len(h.discord.gateway_stats.member_requests) == 1, "asked again needlessly"


async def test_a_session_lost_while_the_member_list_loads_reloads_it_before_syncing(tmp_path):
    def held(guild, site) -> None:
        guild.discord.hold_chunks(after=1)

    async with running_bot(
        tmp_path, members=3 * CHUNK_SIZE, prepare=held, wait_for_ready=False
    ) as h:
        stats = h.discord.gateway_stats
        await h.discord.wait_until(lambda: h.discord.chunks_held, within=30)
        assert h.discord.drop_gateway(close_code=4009) == 1
        h.discord.release_chunks()  # the lost session's chunks are never sent
        await eventually(lambda: h.cog.startup_done.is_set(), within=60)
        summary = await h.wait_for_summary("User sync")
        assert summary.startswith("✅") and " 0 marked left" in summary, summary
        assert (stats.sessions_ended, stats.invalid_sessions, stats.identifies) == (1, 1, 2)
        assert stats.resumes == 0
        # Whether discord.py says ready for the lost session first (its `clear_chunk_requests`
        # hands the waiting chunk request the partial list when the socket closes) or only for
        # the new one depends on how soon the new READY comes: the start-up then either reloads
        # once (sessions_replaced 1) or starts on the new session. Either way no sync may run on
        # the partial list, which the summary and the site say.
        assert h.cog.sessions_replaced in (0, 1)
        await h.until_site_matches()


async def test_a_rate_limited_request_after_a_fresh_ready_is_asked_again_before_reconciling(
    tmp_path,
):
    async with running_bot(
        tmp_path, members=600, discord_options={"member_request_window_s": 10.0}
    ) as h:
        stats = h.discord.gateway_stats
        assert h.discord.drop_gateway(close_code=4009) == 1
        h.discord.note_member_request(h.guild.id)  # the fresh READY's request comes within 10 s
        await h.discord.wait_until(lambda: stats.identifies == 2, within=30)
        await h.discord.wait_until(lambda: bool(stats.rate_limited), within=10)
        synced = await h.wait_for_summary("User sync", nth=2)
        assert synced.startswith("✅") and "reconnect" in synced, synced
        assert " 0 marked left" in synced, synced
        assert len(stats.rate_limited) == 1
        assert [r.rate_limited for r in stats.member_requests] == [False, True, False]
        await h.until_site_matches()
