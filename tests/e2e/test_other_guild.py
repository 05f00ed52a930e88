"""Sync commands work only in the configured guild: the bot may sit in other guilds too, and
their administrators are nobody's moderators here."""

import pytest

from bot.sandbox.world import OtherGuild
from tests.e2e.harness import NO_STARTUP, running_bot, stale_site

pytestmark = pytest.mark.timeout(90)

MEMBERS = 60
OUTSIDE_GUILD = "Sync commands only work in the server this bot syncs."
COMMANDS = ("!sync users", "!sync roles --dry-run", "!sync cancel", "!sync status")
"""Four: a fifth reply in one channel would use up the loopback's 5-per-5-s message limit, and
discord.py would then sleep out the window inside that command while the test ends."""


async def test_an_administrator_of_another_guild_cannot_start_cancel_or_read_runs(tmp_path):
    built: list[OtherGuild] = []

    def prepare(guild, site) -> None:
        stale_site()(guild, site)  # every member differs: a user sync would write them all
        built.append(OtherGuild.build(guild.discord))

    async with running_bot(
        tmp_path, members=MEMBERS, seed_site=False, prepare=prepare, settings=NO_STARTUP
    ) as h:
        (other,) = built
        bot_guild = h.bot.get_guild(other.state.id)
        assert bot_guild is not None, "the bot is in the other guild"
        admin = bot_guild.get_member(other.admin_id)
        assert admin is not None and admin.guild_permissions.administrator
        assert h.guild.state.members.get(other.admin_id) is None

        for command in COMMANDS:
            typed = h.discord.post_message(other.channel_id, other.admin_id, command)

            def reply(typed=typed):
                for message in h.discord.channel_messages(other.channel_id):
                    if str((message.message_reference or {}).get("message_id")) == str(typed.id):
                        return message
                return None

            await h.discord.wait_until(lambda: reply() is not None, within=30)
            answer = reply()
            assert answer.content == OUTSIDE_GUILD, (command, answer.content)
            assert answer.allowed_mentions.get("parse") == []

        assert h.log_messages() == [], "no run was started"
        assert h.site_writes() == 0, dict(h.site.stats.by_route)
        assert not h.cog.runs.active and not h.cog.runs.history
        assert await h.cog.book.recent(limit=5) == []

        # The same command from a moderator of the configured guild does run.
        await h.reply_to(h.say("!sync users"))
        done = await h.wait_for_summary("User sync")
        assert done.startswith("✅") and f"{MEMBERS} updated" in done, done
        status = await h.reply_to(h.say("!sync status"))
        assert status.content.startswith("No sync is running."), status.content
