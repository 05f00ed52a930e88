"""The moderator commands, sent as messages in the guild and answered over the real gateway."""

import re
from dataclasses import replace

import pytest

from bot.sandbox.site import FaultConfig
from bot.sandbox.world import MODERATORS
from guild_sync.site.records import Role
from tests.e2e.harness import NO_STARTUP, eventually, running_bot, stale_site

pytestmark = pytest.mark.timeout(90)


def jump_url_of(h, message_id: int) -> str:
    return f"https://discord.com/channels/{h.guild.id}/{h.guild.log_channel_id}/{message_id}"


async def test_refusals_and_bad_options_run_nothing(tmp_path):
    async with running_bot(tmp_path, members=30, settings=NO_STARTUP) as h:
        outsider = h.guild.ordinary_member_id
        refused = await h.reply_to(h.say("!sync users", author_id=outsider))
        assert refused.content == "Only moderators can run sync commands."
        cancel_refused = await h.reply_to(h.say("!sync cancel", author_id=outsider))
        assert cancel_refused.content == "Only moderators can run sync commands."

        unknown = await h.reply_to(h.say("!sync users --force"))
        assert "--force" in unknown.content and "`--dry-run`" in unknown.content
        idle = await h.reply_to(h.say("!sync status"))
        assert idle.content.startswith("No sync is running.")
        nothing = await h.reply_to(h.say("!sync cancel"))
        assert nothing.content == "No sync is running."

        assert h.log_messages() == [], "no run was started"
        assert h.site_writes() == 0
        assert not h.cog.runs.history


async def test_user_sync_dry_run_writes_nothing_then_the_sync_writes(tmp_path):
    async with running_bot(
        tmp_path, members=120, seed_site=False, prepare=stale_site(every=3), settings=NO_STARTUP
    ) as h:
        stale = 40
        started = await h.reply_to(h.say("!sync users --dry-run"))
        dry = await h.wait_for_summary("User sync")
        live = h.log_messages()[0]
        assert started.content == f"Started; follow it here: {jump_url_of(h, live.id)}"
        assert dry.startswith("✅") and "dry run of users" in dry
        assert f"Would write: 0 created, {stale} updated, 0 marked left" in dry
        assert h.site_writes() == 0, "a dry run wrote to the site"
        assert len(await h.mismatches()) == stale

        await h.reply_to(h.say("!sync users"))
        done = await h.wait_for_summary("User sync", nth=2)
        assert done.startswith("✅") and f"Wrote: 0 created, {stale} updated" in done
        assert await h.mismatches() == []
        assert h.site.stats.bulk_patch_items == stale

        status = (await h.reply_to(h.say("!sync status"))).content
        assert status.startswith("No sync is running.")
        run_lines = [line for line in status.splitlines() if line.startswith("• User sync")]
        assert len(run_lines) == 2, status
        assert all("(command by " in line for line in run_lines), status


RETIRED_ROLE = Role(77, "Retired", 0, 0, 1)
"""A role only the site has, held by a few users: the role sync strips and deletes it."""


def site_with_stale_roles(guild, site):
    """The site lacks a role created on Discord, has an old name for one and an extra one."""
    fresh = guild.discord.create_role(guild.id, "Fresh")
    roles = [role for role in guild.expected_roles() if role.id != fresh.id]
    roles = [replace(r, name="Old mods") if r.name == MODERATORS else r for r in roles]
    users = guild.expected_users()
    users[:3] = [replace(u, roles=u.roles | {RETIRED_ROLE.id}) for u in users[:3]]
    site.store.seed([*roles, RETIRED_ROLE], users)


async def test_role_sync_dry_run_writes_nothing_then_the_sync_writes(tmp_path):
    async with running_bot(
        tmp_path, members=30, seed_site=False, prepare=site_with_stale_roles, settings=NO_STARTUP
    ) as h:
        await h.reply_to(h.say("!sync roles --dry-run"))
        dry = await h.wait_for_summary("Role sync")
        assert dry.startswith("✅") and "dry run of roles" in dry
        assert "Would write roles: 1 created, 1 updated, 1 deleted" in dry, dry
        assert h.site_writes() == 0, "a dry run wrote to the site"

        await h.reply_to(h.say("!sync roles"))
        done = await h.wait_for_summary("Role sync", nth=2)
        assert done.startswith("✅"), done
        assert "Wrote roles: 1 created, 1 updated, 1 deleted (first removed from 3 users)" in done
        assert await h.mismatches() == []
        assert h.site.stats.role_cascade_users == 0


async def test_cancel_stops_a_long_run_and_a_rerun_completes(tmp_path):
    slow_writes = FaultConfig(slow=1.0, slow_delay=0.25, write_only=True)
    settings = NO_STARTUP | {"SYNC_CHUNK_SIZE": "100", "SYNC_MAX_IN_FLIGHT": "1"}
    async with running_bot(
        tmp_path,
        members=3000,
        seed_site=False,
        prepare=stale_site(),
        faults=slow_writes,
        settings=settings,
    ) as h:
        first_command, second_command = h.say("!sync users"), h.say("!sync users")
        first = await h.reply_to(first_command)
        live = h.log_messages()[0]
        assert first.content.endswith(jump_url_of(h, live.id))
        again = await h.reply_to(second_command)
        assert "already running" in again.content and jump_url_of(h, live.id) in again.content

        await eventually(lambda: bool(h.cog.runs.active))
        run = next(iter(h.cog.runs.active.values()))
        await eventually(lambda: run.reporter.meter.done >= 200)
        status = (await h.reply_to(h.say("!sync status"))).content
        live_numbers = re.search(r"▶️ User sync `\w+` \(command\): ([\d,]+) / [?\d,]+ users", status)
        assert live_numbers is not None, status
        assert 200 <= int(live_numbers[1].replace(",", "")) < 3000, status
        assert jump_url_of(h, live.id) in status

        cancelled = await h.reply_to(h.say("!sync cancel"))
        assert cancelled.content.startswith("Cancelling 1 run(s)")
        summary = await h.wait_for_summary("User sync")
        assert summary.startswith("⏹️") and "cancelled" in summary
        assert len(await h.mismatches()) > 0, "the run stopped before the end"
        written = h.site.stats.bulk_patch_items
        assert 200 <= written < 3000
        assert f"Wrote: 0 created, {written:,} updated" in summary, "counts written before the stop"

        h.site.faults.configure(FaultConfig(), reseed=True)
        await h.reply_to(h.say("!sync users"))
        rerun = await h.wait_for_summary("User sync", nth=2)
        assert rerun.startswith("✅")
        assert f"{3000 - written:,} updated" in rerun, "the rerun wrote only what still differed"
        assert await h.mismatches() == []
