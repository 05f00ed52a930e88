"""Discord misbehaves: the gateway drops mid-sync (resumed, or its session lost), or members
change faster than anyone types."""

from __future__ import annotations

import asyncio
import random
import time

from bot.sandbox.sandbox import BULK_PATCH, Sandbox, expect
from bot.sandbox.scenarios.registry import scenario
from bot.sandbox.world import DEVELOPERS, HELPERS

DROP_EVENTS = 300
STORM_UPDATES = 50_000
STORM_SECONDS = 10.0
STORM_BATCHES = 100


def _ordinary_ids(sandbox: Sandbox) -> list[int]:
    protected = sandbox.guild.protected_ids()
    return [m for m in sandbox.guild.state.members if m not in protected]


async def _delete_developers_and_hold_a_quarter_in(sandbox: Sandbox) -> int:
    """Start the role deletion and return once the site holds its chunk a quarter of the way
    through (the caller releases it): whatever the caller does next happens mid-run. Returns
    the deletion's number among the finished role deletions."""
    nth = len(sandbox.finished_runs("Role deletion")) + 1
    holders = sandbox.members - 2
    await sandbox.hold_site_after(BULK_PATCH, holders // 4)
    sandbox.discord.delete_role(sandbox.guild.id, sandbox.guild.role_id(DEVELOPERS))
    held = await sandbox.wait_until_held()
    expect(0 < held["items_before"] < holders, f"the deletion was not held mid-run: {held}")
    return nth


@scenario(
    "gateway-drop",
    f"the gateway connection drops a quarter into a role deletion; {DROP_EVENTS} member "
    "events happen while the bot is away and reach the site after it resumes",
    default_members=20_000,
)
async def gateway_drop(sandbox: Sandbox) -> None:
    discord = sandbox.discord
    resumes, replayed = discord.gateway_stats.resumes, discord.gateway_stats.replayed
    sandbox.say(f"Deleting {DEVELOPERS}; the gateway drops a quarter of the way through.")
    deletion = await _delete_developers_and_hold_a_quarter_in(sandbox)
    dropped = discord.drop_gateway()
    expect(dropped > 0, "no gateway connection to drop")
    sandbox.say(f"Dropped {dropped} gateway connection(s); {DROP_EVENTS} members change meanwhile.")
    _change_members_while_away(sandbox, "joined.while.away")
    await sandbox.release_site()
    await discord.wait_until(lambda: discord.gateway_stats.resumes > resumes, within=60.0)
    sandbox.facts["gateway_resumes"] = discord.gateway_stats.resumes - resumes
    sandbox.facts["replayed_on_resume"] = discord.gateway_stats.replayed - replayed
    expect(
        sandbox.facts["replayed_on_resume"] > DROP_EVENTS,
        f"only {sandbox.facts['replayed_on_resume']} events reached the bot on resume: "
        "they were not sent while it was away",
    )
    summary = await sandbox.wait_for_summary(
        "Role deletion", nth=deletion, within=sandbox.run_timeout()
    )
    expect(summary.startswith("✅"), f"the role deletion did not finish: {summary!r}")
    await sandbox.wait_until_site_matches()


def _change_members_while_away(sandbox: Sandbox, name: str) -> None:
    """DROP_EVENTS members leave, rename or gain a role, and one joins (no await: the caller
    dropped the gateway just before, so the bot cannot have reconnected meanwhile)."""
    guild, discord = sandbox.guild, sandbox.discord
    helpers = guild.role_id(HELPERS)
    for n, user_id in enumerate(_ordinary_ids(sandbox)[:DROP_EVENTS]):
        if n % 3 == 0:
            discord.remove_member(guild.id, user_id)
        elif n % 3 == 1:
            discord.update_member(guild.id, user_id, nick=f"while away {n}")
        else:
            discord.update_member(guild.id, user_id, roles=[helpers])
    discord.add_member(guild.id, name)


@scenario(
    "reidentify",
    "the gateway session is lost a quarter into a role deletion (its RESUME answered "
    f"INVALID_SESSION, d=false); {DROP_EVENTS} members change and one joins while the bot is "
    "away and nothing is replayed: the bot stops the run, reloads the member list and "
    "reconciles with a role sync, then a user sync",
    default_members=20_000,
    reads_site_counters=True,
)
async def reidentify(sandbox: Sandbox) -> None:
    discord = sandbox.discord
    stats = discord.gateway_stats
    identifies, resumes = stats.identifies, stats.resumes
    invalid, replayed = stats.invalid_sessions, stats.replayed
    sandbox.say(f"Deleting {DEVELOPERS}; the gateway session is lost a quarter of the way through.")
    deletion = await _delete_developers_and_hold_a_quarter_in(sandbox)
    held = await sandbox.wait_until_held()  # already held: the gate's state
    discord.invalidate_sessions()
    dropped = discord.drop_gateway()
    expect(dropped > 0, "no gateway connection to drop")
    _change_members_while_away(sandbox, "joined.while.away")
    sandbox.say(
        f"Sessions forgotten, {dropped} connection(s) dropped; {DROP_EVENTS} members change "
        "meanwhile, and no session keeps those events for the bot."
    )
    await discord.wait_until(lambda: stats.identifies > identifies, within=60.0)
    # The deletion's chunk is still held at the site: the run is in progress when the fresh
    # READY replaces the session. The bot logs that it stopped it; only then the gate opens.
    await sandbox.wait_for_bot_log("gateway session replaced", start=sandbox.bot.starts)
    await sandbox.release_site()
    sandbox.facts["items_before_reidentify"] = held["items_before"]
    sandbox.facts["invalid_sessions"] = stats.invalid_sessions - invalid
    sandbox.facts["identifies_again"] = stats.identifies - identifies
    sandbox.facts["gateway_resumes"] = stats.resumes - resumes
    sandbox.facts["replayed_on_resume"] = stats.replayed - replayed
    expect(
        sandbox.facts["invalid_sessions"] >= 1 and sandbox.facts["gateway_resumes"] == 0,
        f"the session was resumed, not replaced: {sandbox.facts}",
    )
    stopped = await sandbox.wait_for_summary(
        "Role deletion", nth=deletion, within=sandbox.run_timeout()
    )
    expect(stopped.startswith("⏹️"), f"the role deletion was not stopped: {stopped!r}")
    told = await sandbox.wait_for_log(
        lambda text: "reconnected without resume: reconciling" in text.lower()
    )
    expect(
        "role deletion" in told, f"the reconcile message does not name the stopped run: {told!r}"
    )
    users = await sandbox.wait_for_summary("User sync", nth=2, within=sandbox.run_timeout())
    expect(users.startswith("✅"), f"the reconcile's user sync did not finish: {users!r}")
    sandbox.facts["reconciled"] = "reconnect" in users
    expect(sandbox.facts["reconciled"], f"the second user sync is not the reconcile: {users!r}")
    await sandbox.wait_until_site_matches()


@scenario(
    "event-storm",
    f"{STORM_UPDATES:,} member updates in {STORM_SECONDS:g} s during a role deletion that "
    "touches every member; the queue coalesces them into about one request per 1,000 updates",
    default_members=20_000,
)
async def event_storm(sandbox: Sandbox) -> None:
    guild, discord = sandbox.guild, sandbox.discord
    rng = random.Random(sandbox.seed)
    ids = _ordinary_ids(sandbox)
    before = await sandbox.site_stats()
    sandbox.say(f"Deleting {DEVELOPERS}, then {STORM_UPDATES:,} nickname changes.")
    deletion = await _delete_developers_and_hold_a_quarter_in(sandbox)
    started = time.monotonic()
    per_batch = STORM_UPDATES // STORM_BATCHES
    for batch in range(STORM_BATCHES):
        for n in range(per_batch):
            user_id = rng.choice(ids)
            discord.update_member(guild.id, user_id, nick=f"storm {batch}.{n}")
        if batch == 0:  # the storm has begun while the deletion had chunks left
            await sandbox.release_site()
        # Spread over the storm's length; a slow machine just sends them later.
        await asyncio.sleep(
            max(0.0, started + STORM_SECONDS * (batch + 1) / STORM_BATCHES - time.monotonic())
        )
    sandbox.say(f"Sent {STORM_UPDATES:,} updates in {time.monotonic() - started:.1f} s.")
    await sandbox.wait_for_summary("Role deletion", nth=deletion, within=sandbox.run_timeout())
    await sandbox.wait_until_site_matches()
    after = await sandbox.site_stats()
    writes = sum(
        after["by_route"].get(route, 0) - before["by_route"].get(route, 0)
        for route in after["by_route"]
        if route.startswith(("PATCH", "POST"))
    )
    sandbox.facts["storm_seconds"] = round(time.monotonic() - started, 1)
    sandbox.facts["storm_write_requests"] = writes
    # One request per event would be 50,000. The queue lingers 1 s, so each second of the storm
    # costs about (updates that second) / 1,000 requests, plus the deletion's members / 1,000.
    budget = (STORM_UPDATES + sandbox.members) // 1000 + 20
    expect(writes <= budget, f"{writes} write requests for the storm (budget {budget})")
