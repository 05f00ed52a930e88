"""The site misbehaves: fails at random, restarts mid-sync, or answers with broken pages."""

from __future__ import annotations

from bot.sandbox.sandbox import BULK_PATCH, RETRY_LINE, Sandbox, expect
from bot.sandbox.scenarios.registry import scenario
from bot.sandbox.site.faults import Malformed
from bot.sandbox.world import DEVELOPERS
from guild_sync.site.records import User

FLAKY_FAULTS = {
    "error_500": 0.05,
    "rate_limit_429": 0.05,
    "retry_after": 0.3,
    "slow": 0.05,
    "slow_delay": 0.3,
    "drop": 0.05,
}
"""One request in five fails: a 500, a 429 with Retry-After, a slow answer or a lost answer."""
HEALED = dict.fromkeys(("error_500", "rate_limit_429", "slow", "drop"), 0.0)
RIDE_OUT_SETTINGS = {"SYNC_RETRY_ATTEMPTS": "8"}
"""Eight attempts back off for up to ~60 s in all: enough to ride out a site restart. With
the default five (~7 s at most, ~4 s on average) chunks give up and are reported instead."""
SITE_DOWN_S = 5.0
BAD_PAGE_SIZE = "50"
"""Small pages, so the scenarios' broken page is not the only one."""


def _holders(sandbox: Sandbox) -> int:
    return sandbox.members - 2  # everyone but the owner and the bot holds Developers


@scenario(
    "flaky-site",
    "one site request in five fails (500, 429, slow, dropped) during the start-up sync and a "
    "role deletion; retries recover every chunk and the log channel shows no error",
    default_members=20_000,
    stale_users=5_000,
    # The start-up sync renames up to every user on purpose (the faults need writes to break),
    # which the mass-update guard would otherwise stop to ask a moderator about.
    settings={**RIDE_OUT_SETTINGS, "SYNC_GUARD_UPDATE_SHARE": "1"},
    site_faults=FLAKY_FAULTS,
)
async def flaky_site(sandbox: Sandbox) -> None:
    sandbox.say(f"The site fails one request in five (seed {sandbox.seed}); deleting {DEVELOPERS}.")
    sandbox.discord.delete_role(sandbox.guild.id, sandbox.guild.role_id(DEVELOPERS))
    summary = await sandbox.wait_for_summary("Role deletion", within=sandbox.run_timeout())
    await sandbox.set_site_faults(**HEALED)
    faults = (await sandbox.site_stats())["faults"]
    sandbox.facts["faults_injected"] = faults
    expect(summary.startswith("✅"), f"the role deletion did not finish: {summary!r}")
    expect(sum(faults.values()) > 0, "the site injected no fault")
    expect(sandbox.bot_log_count(RETRY_LINE) > 0, "the bot's log shows no retry")
    expect(sandbox.error_texts() == [], f"errors were reported: {sandbox.error_texts()[:3]}")


@scenario(
    "site-restart",
    f"the site process is killed a quarter into a role deletion and back {SITE_DOWN_S:g} s "
    "later on the same port and database; the run rides it out and names the outage once",
    default_members=20_000,
    settings=RIDE_OUT_SETTINGS,
    reads_site_counters=True,
)
async def site_restart(sandbox: Sandbox) -> None:
    holders = _holders(sandbox)
    sandbox.say(f"Deleting {DEVELOPERS}; the site will be killed a quarter of the way through.")
    await sandbox.hold_site_after(BULK_PATCH, holders // 4)
    sandbox.discord.delete_role(sandbox.guild.id, sandbox.guild.role_id(DEVELOPERS))
    held = await sandbox.wait_until_held()
    # The site holds the deletion's next chunk unanswered: the run is certainly unfinished.
    expect(
        0 < held["items_before"] < holders,
        f"the site was to be killed mid-run, but had {held['items_before']} of {holders} items",
    )
    sandbox.facts["items_before_outage"] = held["items_before"]
    sandbox.say(
        f"Killing the site (SIGKILL) after {held['items_before']:,} of {holders:,} users, with "
        f"the next chunk held; it comes back in {SITE_DOWN_S:g} s."
    )
    await sandbox.restart_site(SITE_DOWN_S)
    sandbox.say("The site is back.")
    summary = await sandbox.wait_for_summary("Role deletion", within=sandbox.run_timeout())
    sandbox.facts["outage_notes"] = summary.count("site failed for")
    expect(summary.startswith("✅"), f"the role deletion did not finish: {summary!r}")
    expect(summary.count("site failed") == 1, f"the outage is not named once: {summary!r}")
    expect(sandbox.error_texts() == [], f"errors were reported: {sandbox.error_texts()[:3]}")


@scenario(
    "bad-site",
    "user pages come back as an HTML 500, cut JSON, wrong types and missing fields; each "
    "sync fails with a clear error and writes nothing it read from a broken page",
    default_members=5_000,
    settings={"SYNC_PAGE_SIZE": BAD_PAGE_SIZE},
    reads_site_counters=True,
)
async def bad_site(sandbox: Sandbox) -> None:
    page_size = int(BAD_PAGE_SIZE)
    for kind in Malformed:
        stale = await _make_stale(sandbox, page_size)
        writes_before = _writes(await sandbox.site_stats())
        await sandbox.set_site_faults(malformed_pages=kind.value, malformed_from_page=2)
        errors_before = len(sandbox.error_texts())
        sandbox.say(f"User pages 2 and later come back as {kind.value}; a moderator syncs.")
        sandbox.command("!sync users")
        summary = await sandbox.wait_for_summary("User sync", within=sandbox.run_timeout())
        await sandbox.set_site_faults(malformed_pages="")
        errors = sandbox.error_texts()[errors_before:]
        expect(summary.startswith("❌"), f"{kind.value}: the sync did not fail: {summary!r}")
        expect(
            any("GET bot/users" in text for text in errors),
            f"{kind.value}: no error names the page that could not be read: {errors}",
        )
        first_page = set(sorted(sandbox.guild.state.members)[:page_size])
        unread = [u for u in stale if u.id not in first_page]
        written = [u.id for u in unread if await sandbox.client.get_user(u.id) != u]
        expect(not written, f"{kind.value}: users of unread pages were written: {written[:5]}")
        # The first page was read whole and may have been written; nothing else was.
        extra = _writes(await sandbox.site_stats()) - writes_before
        expect(extra <= 1, f"{kind.value}: {extra} write requests for one readable page")
        sandbox.facts.setdefault("failed_runs", {})[kind.value] = errors[-1][:120]
    sandbox.say("The site is fixed; a moderator syncs once more.")
    sandbox.command("!sync users")
    summary = await sandbox.wait_for_summary("User sync", within=sandbox.run_timeout())
    expect(summary.startswith("✅"), f"the sync after the fix did not finish: {summary!r}")


async def _make_stale(sandbox: Sandbox, page_size: int) -> list[User]:
    """Give one user on page 1 and one on each later page an outdated display name on the
    site; returns them as they are now stored (only a sync may change them)."""
    ids = sorted(sandbox.guild.state.members)
    chosen = ids[1:page_size:page_size] + ids[page_size::page_size]
    await sandbox.client.bulk_patch_users(
        [{"id": user_id, "display_name": f"stale {n}"} for n, user_id in enumerate(chosen)]
    )
    stale = []
    for user_id in chosen:
        user = await sandbox.client.get_user(user_id)
        assert user is not None
        stale.append(user)
    return stale


def _writes(stats: dict) -> int:
    return sum(
        n
        for route, n in stats["by_route"].items()
        if route.split(" ", 1)[0] in ("POST", "PUT", "PATCH", "DELETE")
    )
