"""Discord's REST API misbehaves mid-run: 502s, a global 429, and a live message too old to edit."""

from __future__ import annotations

from bot.sandbox.discord.rest import MESSAGE_EDIT
from bot.sandbox.discord.state import StoredMessage
from bot.sandbox.sandbox import BULK_PATCH, Sandbox, expect
from bot.sandbox.scenarios.registry import scenario
from bot.sandbox.world import DEVELOPERS
from guild_sync.exts.sync._reporter import is_final_summary

TITLE = "Role deletion"
EDIT_502S = 1
"""discord.py sleeps 1 s after a 502 and tries again (then 3, 5, 7 s; it gives up after five)."""
GLOBAL_RETRY_S = 1.0
OLD_EDIT_RETRY_S = 0.5
"""The 30046 answers' retry_after, which discord.py waits out before each next try."""
TRIES = 5
"""discord.py's tries of one request: the 502, the global 429, then 30046 until it gives up."""
NOT_UPDATED = "could not be updated"


def _live_message(sandbox: Sandbox) -> StoredMessage | None:
    """The newest run message of a role deletion that has not finished yet."""
    messages = sandbox.discord.channel_messages(sandbox.guild.log_channel_id)
    running = [
        m
        for m in messages
        if m.versions[0].content.startswith(f"🔄 **{TITLE}**")
        and not is_final_summary(m.content, TITLE)
    ]
    return running[-1] if running else None


@scenario(
    "discord-rest-faults",
    "a quarter into a role deletion Discord's REST API misbehaves: the next edit of the live "
    f"message gets a 502, then a global 429 that holds every route for {GLOBAL_RETRY_S:g} s; and "
    "the live message turns older than an hour, so Discord refuses its edits (30046); the run "
    "finishes and its summary lands as a new message saying why",
    default_members=20_000,
    reads_site_counters=True,
)
async def discord_rest_faults(sandbox: Sandbox) -> None:
    discord, guild = sandbox.discord, sandbox.guild
    holders = sandbox.members - 2
    nth = len(sandbox.finished_runs(TITLE)) + 1
    sandbox.say(f"Deleting {DEVELOPERS}; Discord's REST API misbehaves a quarter of the way in.")
    await sandbox.hold_site_after(BULK_PATCH, holders // 4)
    discord.delete_role(guild.id, guild.role_id(DEVELOPERS))
    held = await sandbox.wait_until_held()
    expect(0 < held["items_before"] < holders, f"the deletion was not held mid-run: {held}")
    live = _live_message(sandbox)
    expect(live is not None, "the role deletion has no live message while it is held")
    assert live is not None
    before = dict(discord.faults_served)
    # While the site holds the deletion's next chunk, so the run is certainly unfinished.
    discord.fail_requests(EDIT_502S, status=502, routes=[MESSAGE_EDIT])
    discord.rate_limit_globally(1, retry_after=GLOBAL_RETRY_S, routes=[MESSAGE_EDIT])
    discord.backdate_message(live.channel_id, live.id)
    discord.limit_old_message_edits(allowed=0, retry_after=OLD_EDIT_RETRY_S)
    sandbox.say(
        f"Held after {held['items_before']:,} of {holders:,} users: the next live edit gets a "
        "502, then a global 429, and the live message is now over an hour old."
    )
    await sandbox.release_site()
    summary = await sandbox.wait_for_summary(TITLE, nth=nth, within=sandbox.run_timeout())
    served = {k: v - before.get(k, 0) for k, v in discord.faults_served.items()}
    discord.limit_old_message_edits(None)
    discord.clear_rest_faults()
    sandbox.facts["items_before_faults"] = held["items_before"]
    sandbox.facts["faults_served"] = served
    posted = [
        m
        for m in discord.channel_messages(guild.log_channel_id)
        if is_final_summary(m.content, TITLE) and m.id > live.id
    ]
    sandbox.facts["summary_posted_anew"] = len(posted) == 1 and posted[0].edits == 0
    sandbox.facts["live_message_edits"] = live.edits
    expect(summary.startswith("✅"), f"the role deletion did not finish: {summary!r}")
    expect(served.get("server_error_502") == EDIT_502S, f"502s served: {served}")
    expect(served.get("global_429") == 1, f"global 429s served: {served}")
    # One edit took all of discord.py's tries; after its 30046 the bot edits the message no more.
    expect(
        served.get("old_message_edit_30046") == TRIES - EDIT_502S - 1,
        f"the old live message was edited again after Discord refused it: {served}",
    )
    expect(sandbox.facts["summary_posted_anew"], f"the summary was not posted anew: {posted}")
    expect(not is_final_summary(live.content, TITLE), "the too-old live message was edited")
    expect(NOT_UPDATED in summary, f"the summary does not say why it is new: {summary!r}")
    expect(len(summary) <= 2000, f"the summary is {len(summary)} characters")
    allowed = posted[0].allowed_mentions or {}
    expect(allowed.get("parse") == [] and not allowed.get("roles"), "the summary may ping")
    await sandbox.wait_until_site_matches()
