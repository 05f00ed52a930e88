"""The run's summary lands even when its live message cannot take it: deleted (404), older than
an hour (30046), or Discord failing every edit (503). The summary is then posted as a new
message, still a final summary, saying that the live message could not be updated; the
rejected records' message falls back the same way. Each fault is injected while the run's
first write is held at the site, so it lands mid-run by construction."""

from dataclasses import replace

import pytest

from bot.sandbox.discord.state import StoredMessage
from bot.sandbox.sandbox import BULK_PATCH
from bot.sandbox.site import SandboxSite
from bot.sandbox.world import DEVELOPERS, SandboxGuild
from guild_sync.exts.sync._reporter import is_final_summary
from tests.e2e.harness import NO_STARTUP, Harness, eventually, running_bot, stale_site

pytestmark = pytest.mark.timeout(60)

MEMBERS = 60
TITLE = "User sync"
NOT_UPDATED = "could not be updated"


async def _held_user_sync(h: Harness, after_items: int = 0) -> StoredMessage:
    """Start a user sync and return its live message once the site holds a write of it."""
    h.site.hold.arm(BULK_PATCH, after_items)
    await h.reply_to(h.say("!sync users"))
    await eventually(lambda: h.site.hold.waiting > 0)
    [live] = [m for m in h.log_messages() if m.versions[0].content.startswith("🔄 **User sync**")]
    return live


def _summaries(h: Harness) -> list[StoredMessage]:
    return [m for m in h.log_messages() if is_final_summary(m.content, TITLE)]


def _check_fallback(h: Harness, live: StoredMessage, why: str) -> StoredMessage:
    [posted] = _summaries(h)
    assert posted.id != live.id and posted.edits == 0, "posted as a new message"
    assert posted.content.startswith("✅ **User sync**"), posted.content
    assert f"{MEMBERS} updated" in posted.content
    assert NOT_UPDATED in posted.content and why in posted.content, posted.content
    run_line = live.versions[0].content.splitlines()[-1]
    assert run_line.startswith("-# run `") and posted.content.splitlines()[-1] == run_line
    assert len(posted.content) <= 2000
    assert not is_final_summary(live.content, TITLE), "the live message was not updated"
    return posted


async def test_a_deleted_live_message_gets_its_summary_as_a_new_message(tmp_path):
    async with running_bot(
        tmp_path, members=MEMBERS, seed_site=False, prepare=stale_site(), settings=NO_STARTUP
    ) as h:
        live = await _held_user_sync(h)
        h.discord.delete_message(live.channel_id, live.id)
        h.site.hold.release()
        await h.wait_for_summary(TITLE, within=20)
        _check_fallback(h, live, "deleted")
        await h.until_site_matches()


async def test_a_live_message_older_than_an_hour_gets_its_summary_as_a_new_message(tmp_path):
    async with running_bot(
        tmp_path, members=MEMBERS, seed_site=False, prepare=stale_site(), settings=NO_STARTUP
    ) as h:
        live = await _held_user_sync(h)
        h.discord.backdate_message(live.channel_id, live.id)
        h.discord.limit_old_message_edits(allowed=0, retry_after=0.05)
        h.site.hold.release()
        await h.wait_for_summary(TITLE, within=20)
        _check_fallback(h, live, "older than an hour")
        # One edit met the limit (discord.py tried it five times); no edit was tried after it.
        assert h.discord.faults_served["old_message_edit_30046"] == 5
        await h.until_site_matches()


async def test_edits_failing_with_503_get_the_summary_as_a_new_message(tmp_path):
    async with running_bot(
        tmp_path, members=MEMBERS, seed_site=False, prepare=stale_site(), settings=NO_STARTUP
    ) as h:
        live = await _held_user_sync(h)
        h.discord.fail_requests(1000, status=503, routes=["message_edit"])
        h.site.hold.release()
        await h.wait_for_summary(TITLE, within=20)
        _check_fallback(h, live, "HTTP 503")
        assert h.discord.faults_served["server_error_503"] >= 1
        h.discord.clear_rest_faults()


def _site_without_developers(guild: SandboxGuild, site: SandboxSite) -> None:
    developers = guild.role_id(DEVELOPERS)
    roles = [role for role in guild.expected_roles() if role.id != developers]
    users = [replace(u, roles=u.roles - {developers}) for u in guild.expected_users()]
    site.store.seed(roles, users)


async def test_the_rejections_message_and_the_summary_both_fall_back(tmp_path):
    members = 102  # 100 holders of Developers, which the site lacks: all 100 are rejected
    async with running_bot(
        tmp_path,
        members=members,
        seed_site=False,
        prepare=_site_without_developers,
        settings=NO_STARTUP | {"SYNC_CHUNK_SIZE": "25", "SYNC_MAX_IN_FLIGHT": "1"},
    ) as h:
        live = await _held_user_sync(h, after_items=25)  # the second chunk is held

        def rejections() -> list[StoredMessage]:
            return [m for m in h.log_messages() if "the site rejected" in m.versions[0].content]

        await h.discord.wait_until(lambda: len(rejections()) == 1)
        [first] = rejections()
        versions = len(first.versions)
        h.discord.fail_requests(1000, status=503, routes=["message_edit"])
        h.site.hold.release()
        await h.wait_for_summary(TITLE, within=20)
        h.discord.clear_rest_faults()

        summary = _summaries(h)[0]
        assert "100 failed" in summary.content and NOT_UPDATED in summary.content
        [_, final] = rejections()
        assert final.id > first.id and final.id < summary.id, "rejections first, then summary"
        assert "the site rejected 100 user(s)" in final.content
        assert NOT_UPDATED in final.content and "HTTP 503" in final.content
        assert len(first.versions) == versions, "no edit landed once edits failed"
        [(name, data)] = final.current.files
        assert name == "rejected-user-ids.txt" and len(data.decode().splitlines()) == 100
        assert not is_final_summary(live.content, TITLE)
