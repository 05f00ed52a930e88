"""Records the site rejects are told once per run and cause: one log-channel message and one
Sentry event for hundreds of users, every id in the bot's log and in the message's file."""

import logging
from dataclasses import replace

import pytest

from bot.sandbox.site import SandboxSite
from bot.sandbox.world import DEVELOPERS, SandboxGuild
from tests.e2e.harness import NO_STARTUP, running_bot

pytestmark = pytest.mark.timeout(90)

MEMBERS = 302  # everyone but the owner and the bot holds Developers: 300 holders
DSN = "https://0123456789abcdef0123456789abcdef@sentry.invalid/4242"


def site_without_developers(guild: SandboxGuild, site: SandboxSite) -> None:
    """The site lacks the Developers role (its users do not hold it): every holder's roles
    are refused with "Role with ID … does not exist"."""
    developers = guild.role_id(DEVELOPERS)
    roles = [role for role in guild.expected_roles() if role.id != developers]
    users = [replace(u, roles=u.roles - {developers}) for u in guild.expected_users()]
    site.store.seed(roles, users)


async def test_three_hundred_rejected_users_make_one_message_and_one_sentry_event(
    tmp_path, recorded_sentry, caplog
):
    caplog.set_level(logging.WARNING, logger="bot")
    async with running_bot(
        tmp_path,
        members=MEMBERS,
        seed_site=False,
        prepare=site_without_developers,
        settings=NO_STARTUP | {"BOT_SENTRY_DSN": DSN, "SYNC_CHUNK_SIZE": "50"},
    ) as h:
        holders = {u.id for u in h.guild.expected_users() if h.guild.role_id(DEVELOPERS) in u.roles}
        assert len(holders) == 300
        await h.reply_to(h.say("!sync users"))
        summary = await h.wait_for_summary("User sync")
        messages = h.log_messages()
        payloads = recorded_sentry.payloads()

    assert "0 updated, 0 marked left, 2 unchanged, 300 failed" in summary, summary
    assert "failed requests" not in summary and "1 errors reported below" in summary
    live, rejected = messages  # the live message and one message for every rejected record
    assert live.content == summary
    assert rejected.content.startswith("⚠️ **User sync**: the site rejected 300 user(s)")
    assert rejected.content.count("Site said:") == 1 and "does not exist" in rejected.content
    assert len(rejected.versions) <= 1 + 300 // 50, "edited at most once per chunk"
    [(name, data)] = rejected.current.files
    assert name == "rejected-user-ids.txt"
    assert {int(line.split("\t")[0]) for line in data.decode().splitlines()} == holders

    rejections = [p for p in payloads if "rejected users" in p]
    assert len(rejections) == 1, f"{len(rejections)} Sentry events for one cause"
    logged = " ".join(r.getMessage() for r in caplog.records if "rejected" in r.getMessage())
    assert all(str(user_id) in logged for user_id in holders), "an id missing from the log"
