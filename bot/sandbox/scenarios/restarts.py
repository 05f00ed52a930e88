"""The bot dies or the site fails, and the bot neither loses work nor repeats itself forever."""

from __future__ import annotations

from bot.sandbox.sandbox import BULK_PATCH, Sandbox, expect
from bot.sandbox.scenarios.registry import scenario
from bot.sandbox.world import DEVELOPERS

FAILING_SITE_SETTINGS = {
    "SYNC_RETRY_ATTEMPTS": "2",
    "SYNC_BREAKER_THRESHOLD": "3",
    # Its start-ups must fail, not ask: 1,000 renamed users are over the mass-update guard's
    # share of a guild smaller than 4,000 members.
    "SYNC_GUARD_UPDATE_SHARE": "1",
}


@scenario(
    "restart",
    "the bot is SIGKILLed in the middle of the role deletion and started again",
    default_members=80_000,
    reads_site_counters=True,
)
async def restart(sandbox: Sandbox) -> None:
    holders = sandbox.members - 2  # everyone but the owner and the bot
    sandbox.say(f"Deleting {DEVELOPERS}; the bot will be killed a quarter of the way through.")
    await sandbox.hold_site_after(BULK_PATCH, holders // 4)
    sandbox.discord.delete_role(sandbox.guild.id, sandbox.guild.role_id(DEVELOPERS))
    held = await sandbox.wait_until_held()
    sandbox.bot.kill()  # while the site holds the deletion's next chunk: certainly mid-run
    written = held["items_before"]
    expect(
        0 < written < holders,
        f"the bot was to be killed mid-run, but the site had {written} of {holders} items",
    )
    sandbox.facts["items_before_kill"] = written
    sandbox.say(
        f"Killed the bot (SIGKILL) after {written:,} of {holders:,} users were stripped. "
        "Starting it again."
    )
    await sandbox.release_site()  # the dead bot's held chunk lands, as an answer lost would
    sandbox.bot.start()
    await sandbox.wait_for_summary("User sync", nth=2, within=sandbox.run_timeout())
    told = [text for text in sandbox.error_texts() if "was interrupted" in text]
    expect(len(told) == 1, f"the start-up did not report the interrupted run once: {told}")
    resumed = [text for text in sandbox.finished_runs("User sync") if "resumes interrupted" in text]
    expect(len(resumed) == 1, "the start-up sync does not say it resumes the interrupted run")


@scenario(
    "failing-site",
    "the site rejects every write: after 3 failed automatic runs across restarts the bot "
    "pauses automatic syncs and says so; after the site heals a moderator's run resumes them",
    default_members=20_000,
    stale_users=1_000,
    reject_writes=True,
    settings=FAILING_SITE_SETTINGS,
)
async def failing_site(sandbox: Sandbox) -> None:
    for attempt in (2, 3):
        sandbox.say(f"Restarting the bot (start {attempt}); the site still rejects writes.")
        sandbox.bot.restart()
        await sandbox.wait_for_summary("User sync", nth=attempt, within=sandbox.run_timeout())
    await sandbox.wait_for_log(lambda text: "Automatic syncs paused" in text)
    sandbox.say("Restarting once more: the breaker is open, so no automatic sync may start.")
    sandbox.bot.restart()
    await sandbox.wait_for_bot_log("automatic users run not started", start=4)
    sandbox.say("The site is fixed; a moderator runs the sync by hand.")
    await sandbox.set_site_faults(reject_writes=False)
    sandbox.command("!sync users")
    await sandbox.wait_for_log(lambda text: "runs are enabled again" in text)
