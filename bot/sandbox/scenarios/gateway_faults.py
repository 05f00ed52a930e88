"""Discord's gateway misbehaves around the member list: a session ended by close 4009 (mid-run,
and while the member list loads), a member request answered RATE_LIMITED after quick restarts,
member chunks at a slow pace with members joining and leaving between them, the guild lost in
an outage mid-run. Each fault is placed by construction: the site's hold gate, the emulator's
chunk gate, or the bot's own log line saying it saw what came before."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.sandbox.discord.gateway import (
    CHUNK_SIZE,
    CLOSE_SESSION_TIMED_OUT,
    MEMBER_REQUEST_WINDOW_S,
    GatewayStats,
)
from bot.sandbox.sandbox import Sandbox, expect
from bot.sandbox.scenarios.registry import scenario
from bot.sandbox.scenarios.storms import (
    DROP_EVENTS,
    _change_members_while_away,
    _delete_developers_and_hold_a_quarter_in,
    _ordinary_ids,
)
from bot.sandbox.world import HELPERS

RATE_LIMITED_TOLD = "rate limited"
"""What the bot's log-channel message says when its member request was rate limited."""
DISCORD_PY_GAVE_UP = "timed out waiting for chunks"
"""discord.py's warning when its chunk timeout passes and it reports READY anyway."""
CHANGES_BETWEEN_CHUNKS = 30
"""Members leaving, and changing, while chunks are held: half in chunks already sent."""
SLOW_CHUNKING_S = 5.0
"""The pace of the slow chunks: the whole member list takes about this long to arrive."""
OUTAGE_S = 2.0
"""How long the guild stays unavailable after the bot paused: the outage's own length, in
which a bot that did not pause would have written its next chunks."""


def _count(stats: GatewayStats) -> dict[str, int]:
    return {
        "identifies": stats.identifies,
        "resumes": stats.resumes,
        "invalid_sessions": stats.invalid_sessions,
        "sessions_ended": stats.sessions_ended,
        "replayed": stats.replayed,
        "member_requests": len(stats.member_requests),
        "rate_limited": len(stats.rate_limited),
    }


def _since(stats: GatewayStats, before: dict[str, int]) -> dict[str, int]:
    now = _count(stats)
    return {name: now[name] - before[name] for name in now}


@scenario(
    "session-lost",
    "the gateway closes with 4009 (session timed out) a quarter into a role deletion, while "
    f"{DROP_EVENTS} members change: the RESUME is refused and the bot reconciles on a fresh "
    "READY; then the bot restarts and 4009 comes while its member list loads (one chunk sent, "
    "the rest held): it loads the list again before any user sync",
    default_members=20_000,
    reads_site_counters=True,
)
async def session_lost(sandbox: Sandbox) -> None:
    discord, stats = sandbox.discord, sandbox.discord.gateway_stats
    before = _count(stats)
    sandbox.say("Deleting Developers; the gateway closes with 4009 a quarter of the way through.")
    deletion = await _delete_developers_and_hold_a_quarter_in(sandbox)
    held = await sandbox.wait_until_held()
    dropped = discord.drop_gateway(close_code=CLOSE_SESSION_TIMED_OUT)
    expect(dropped > 0, "no gateway connection to close")
    _change_members_while_away(sandbox, "joined.while.away")
    await discord.wait_until(lambda: stats.identifies > before["identifies"], within=60.0)
    # Still held at the site: the run is in progress when the fresh READY replaces the session.
    await sandbox.wait_for_bot_log("gateway session replaced", start=sandbox.bot.starts)
    await sandbox.release_site()
    mid_run = _since(stats, before)
    sandbox.facts["items_before_close"] = held["items_before"]
    sandbox.facts["mid_run"] = mid_run
    expect(
        mid_run["sessions_ended"] >= 1 and mid_run["invalid_sessions"] >= 1,
        f"the 4009 close did not end the session: {mid_run}",
    )
    expect(mid_run["resumes"] == 0, f"the session was resumed after 4009: {mid_run}")
    stopped = await sandbox.wait_for_summary(
        "Role deletion", nth=deletion, within=sandbox.run_timeout()
    )
    expect(stopped.startswith("⏹️"), f"the role deletion was not stopped: {stopped!r}")
    users = await sandbox.wait_for_summary("User sync", nth=2, within=sandbox.run_timeout())
    expect(users.startswith("✅") and "reconnect" in users, f"no reconcile: {users!r}")
    await sandbox.wait_until_site_matches()

    sandbox.say("The bot restarts; 4009 comes while its member list is loading.")
    before = _count(stats)
    chunks_before = stats.chunks_sent
    discord.hold_chunks(after=1)
    sandbox.bot.restart()
    await discord.wait_until(lambda: discord.chunks_held, within=60.0)
    [request] = stats.member_requests[before["member_requests"] :]
    sent_before_close = stats.chunks_sent - chunks_before
    discord.drop_gateway(close_code=CLOSE_SESSION_TIMED_OUT)
    discord.release_chunks()  # the ended session's chunks are never sent; the new one's are
    expect(
        0 < sent_before_close < request.chunk_count,
        f"the close did not come mid-list: {sent_before_close} of {request.chunk_count} chunks",
    )
    startup = await sandbox.wait_for_summary("User sync", nth=3, within=sandbox.run_timeout())
    while_loading = _since(stats, before)
    sandbox.facts["while_loading"] = while_loading | {
        "chunks_sent_before_close": sent_before_close,
        "chunks_of_lost_request": request.chunk_count,
    }
    expect(
        while_loading["invalid_sessions"] >= 1 and while_loading["identifies"] >= 2,
        f"the session was not replaced while the list loaded: {while_loading}",
    )
    expect(
        startup.startswith("✅") and " 0 marked left" in startup,
        f"the start-up sync after the lost session: {startup!r}",
    )
    await sandbox.wait_until_site_matches()


@scenario(
    "chunk-rate-limit",
    "the bot restarts twice in quick succession with Discord's limit on member requests on "
    "(one for all members per guild every 30 s): the new processes' requests are answered "
    "RATE_LIMITED with no chunks, members join and leave meanwhile; the bot says so, waits "
    "`retry_after`, asks again once and syncs the whole list",
    default_members=20_000,
    rehearsable=True,
    full_sync=True,  # the restarted bot's start-up sync
)
async def chunk_rate_limit(sandbox: Sandbox) -> None:
    discord, stats = sandbox.discord, sandbox.discord.gateway_stats
    guild = sandbox.guild
    discord.limit_member_requests(MEMBER_REQUEST_WINDOW_S)  # the first start's request counts
    before = _count(stats)
    sandbox.say("Discord now limits member requests; the bot restarts at once, twice.")
    for restart in (1, 2):
        sandbox.bot.restart()
        await discord.wait_until(
            lambda n=restart: len(stats.rate_limited) >= before["rate_limited"] + n, within=60.0
        )
        await sandbox.wait_for_bot_log(RATE_LIMITED_TOLD, start=sandbox.bot.starts)
    limited = stats.rate_limited[before["rate_limited"] :]
    sandbox.facts["retry_after_s"] = [round(r.retry_after, 1) for r in limited]
    leavers = _ordinary_ids(sandbox)[:10]
    for user_id in leavers:
        discord.remove_member(guild.id, user_id)
    joined = [discord.add_member(guild.id, f"joined.while.limited.{n}") for n in range(5)]
    sandbox.say(
        f"Both starts were rate limited (retry after {sandbox.facts['retry_after_s']} s); "
        f"{len(leavers)} members leave and {len(joined)} join while the bot waits."
    )
    told = await sandbox.wait_for_log(
        lambda text: RATE_LIMITED_TOLD in text.lower(), within=sandbox.run_timeout()
    )
    summary = await sandbox.wait_for_summary("User sync", nth=2, within=sandbox.run_timeout())
    counted = _since(stats, before)
    sandbox.facts["rate_limited_requests"] = counted["rate_limited"]
    sandbox.facts["member_requests"] = counted["member_requests"]
    sandbox.facts["told"] = told.splitlines()[0][:200]
    expect(
        counted["rate_limited"] == 2,
        f"not exactly the two quick starts rate limited (asked again too soon?): {counted}",
    )
    expect(counted["member_requests"] == 3, f"asked more often than needed: {counted}")
    expect(
        summary.startswith("✅") and f" {len(leavers)} marked left" in summary,
        f"the start-up sync after the rate limit: {summary!r}",
    )
    await sandbox.wait_until_site_matches()
    discord.limit_member_requests(None)


@scenario(
    "slow-chunks",
    f"the bot restarts and its member list arrives slowly ({SLOW_CHUNKING_S:g} s in all, one "
    "chunk at a time), the rest held after the first chunk until discord.py gives up waiting "
    f"and reports READY; meanwhile {CHANGES_BETWEEN_CHUNKS} members leave, as many change "
    "nickname or roles and some join, in chunks sent and chunks still to come",
    default_members=20_000,
    rehearsable=True,
    full_sync=True,  # the restarted bot's start-up sync
)
async def slow_chunks(sandbox: Sandbox) -> None:
    discord, stats, guild = sandbox.discord, sandbox.discord.gateway_stats, sandbox.guild
    chunk_count = -(-len(guild.state.members) // CHUNK_SIZE)
    discord.pace_chunks(SLOW_CHUNKING_S / chunk_count)
    discord.hold_chunks(after=1)
    before = _count(stats)
    events_before = sum(stats.dispatched[e] for e in _MEMBER_EVENTS)
    chunks_before = stats.chunks_sent
    sandbox.say(f"The bot restarts; its {chunk_count} member chunks come slowly.")
    sandbox.bot.restart()
    await discord.wait_until(lambda: discord.chunks_held, within=60.0)
    expect(stats.chunks_sent - chunks_before == 1, "not held after the first chunk")
    ids = _ordinary_ids(sandbox)
    half = CHANGES_BETWEEN_CHUNKS // 2
    first_chunk, later = ids[: CHUNK_SIZE - 10], ids[CHUNK_SIZE:]
    leavers = first_chunk[:half] + later[-half:]
    changed = first_chunk[half : 2 * half] + later[-2 * half : -half]
    helpers = guild.role_id(HELPERS)
    for user_id in leavers:
        discord.remove_member(guild.id, user_id)
    for n, user_id in enumerate(changed):
        if n % 2:
            discord.update_member(guild.id, user_id, nick=f"changed while chunking {n}")
        else:
            discord.update_member(guild.id, user_id, roles=[helpers])
    joined = [discord.add_member(guild.id, f"joined.while.chunking.{n}") for n in range(5)]
    # discord.py reports READY on a partial list; only then do the other chunks come.
    await sandbox.wait_for_bot_log(DISCORD_PY_GAVE_UP, start=sandbox.bot.starts)
    sent_at_ready = stats.chunks_sent - chunks_before
    discord.release_chunks()
    summary = await sandbox.wait_for_summary("User sync", nth=2, within=sandbox.run_timeout())
    counted = _since(stats, before)
    sandbox.facts["chunk_count"] = chunk_count
    sandbox.facts["chunk_interval_s"] = round(SLOW_CHUNKING_S / chunk_count, 3)
    sandbox.facts["events_between_chunks"] = (
        sum(stats.dispatched[e] for e in _MEMBER_EVENTS) - events_before
    )
    sandbox.facts["chunks_sent_when_discord_py_gave_up"] = sent_at_ready
    sandbox.facts["member_requests"] = counted["member_requests"]
    expect(counted["member_requests"] == 1, f"asked again while chunks came: {counted}")
    expect(
        summary.startswith("✅")
        and f" {len(leavers)} marked left" in summary
        and f"{len(joined)} created" in summary,
        f"the start-up sync on the slow list: {summary!r}",
    )
    await sandbox.wait_until_site_matches()
    discord.pace_chunks(0.0)


_MEMBER_EVENTS = ("GUILD_MEMBER_ADD", "GUILD_MEMBER_REMOVE", "GUILD_MEMBER_UPDATE")


@scenario(
    "guild-outage",
    "a quarter into a role deletion (its next chunk held at the site) the guild goes "
    f"unavailable on Discord (GUILD_DELETE unavailable: true) for {OUTAGE_S:g} s and comes "
    "back (GUILD_CREATE): the bot holds its writes meanwhile and the deletion finishes after",
    default_members=20_000,
    reads_site_counters=True,
)
async def guild_outage(sandbox: Sandbox) -> None:
    discord, guild = sandbox.discord, sandbox.guild
    sandbox.say("Deleting Developers; the guild goes unavailable a quarter of the way through.")
    deletion = await _delete_developers_and_hold_a_quarter_in(sandbox)
    held = await sandbox.wait_until_held()
    discord.make_guild_unavailable(guild.id)
    await sandbox.wait_for_bot_log("is unavailable on Discord", start=sandbox.bot.starts)
    await sandbox.release_site()  # the requests already sent are answered
    landed = await sandbox.site_stats()
    await asyncio.sleep(OUTAGE_S)  # the outage lasts: the bot must not write meanwhile
    during = await sandbox.site_stats()
    discord.make_guild_available(guild.id)
    sandbox.say(f"The guild is back after {OUTAGE_S:g} s.")
    sandbox.facts["items_before_outage"] = held["items_before"]
    sandbox.facts["written_during_outage"] = _items(during) - _items(landed)
    sandbox.facts["guild_deletes"] = discord.gateway_stats.dispatched["GUILD_DELETE"]
    expect(
        sandbox.facts["written_during_outage"] == 0,
        f"{sandbox.facts['written_during_outage']} users were written while the guild was away",
    )
    summary = await sandbox.wait_for_summary(
        "Role deletion", nth=deletion, within=sandbox.run_timeout()
    )
    expect(summary.startswith("✅"), f"the role deletion did not finish: {summary!r}")
    told = await sandbox.wait_for_log(lambda text: text.startswith("⏸️"))
    sandbox.facts["paused_runs_told"] = "role deletion" in told
    expect(sandbox.facts["paused_runs_told"], f"the outage message names no run: {told!r}")
    sandbox.facts["written_after_outage"] = _items(await sandbox.site_stats()) - _items(during)
    sandbox.say("Members join and leave now that the guild is back.")
    discord.add_member(guild.id, "joined.after.the.outage")
    discord.remove_member(guild.id, _ordinary_ids(sandbox)[0])
    await sandbox.wait_until_site_matches()


def _items(stats: dict[str, Any]) -> int:
    return int(stats["bulk_patch_items"])
