"""The sync commands as slash commands: registered on the guild, invoked as interactions over the
loopback Discord's gateway, answered through the interaction callback and its webhook."""

from __future__ import annotations

import pytest

from bot.sandbox.discord.app_commands import CommandHidden
from bot.sandbox.discord.gateway import GUILD_MEMBERS, MESSAGE_CONTENT
from bot.sandbox.discord.interactions import TOKEN_LIFETIME_S
from bot.sandbox.world import MODERATORS
from guild_sync.config import Settings
from guild_sync.exts.sync._slash import (
    MODERATOR_PERMISSIONS,
    SLASH_COMMANDS,
    ensure_registered,
    slash_only_notice,
)
from tests.e2e.harness import NO_STARTUP, eventually, running_bot, stale_site

pytestmark = pytest.mark.timeout(90)

MEMBERS = 300
STALE_EVERY = 3
STALE = MEMBERS // STALE_EVERY
CHANNEL_MESSAGE, DEFERRED = 4, 5
EPHEMERAL = 64
BULK_PATCH = "PATCH /api/bot/users/bulk_patch"


def moderators_see_the_commands(guild, site) -> None:
    """The sandbox's Moderators role can manage roles (the commands' default permission), and
    every third member's display name is outdated on the site."""
    manage_roles = MODERATOR_PERMISSIONS.value
    guild.discord.update_role(guild.id, guild.role_id(MODERATORS), permissions=manage_roles)
    stale_site(every=STALE_EVERY)(guild, site)


def slash_commands_only(settings: Settings) -> Settings:
    """SYNC_PREFIX_COMMANDS=false."""
    return settings.model_copy(update={"prefix_commands": False})


def jump_url(h, message_id: int) -> str:
    return f"https://discord.com/channels/{h.guild.id}/{h.guild.log_channel_id}/{message_id}"


def slash_world(**options):
    return running_bot(
        options.pop("tmp_path"),
        members=MEMBERS,
        seed_site=False,
        prepare=moderators_see_the_commands,
        settings=NO_STARTUP,
        **options,
    )


async def test_a_moderators_dry_run_is_deferred_then_shows_the_plan(tmp_path):
    async with slash_world(tmp_path=tmp_path) as h:
        await h.slash_commands_registered()
        [command] = h.discord.registered_commands(h.guild.id)
        assert h.discord.registered_commands(None) == [], "guild commands only, none global"
        assert command.name == "sync"
        assert command.default_member_permissions == MODERATOR_PERMISSIONS.value
        subcommands = {o["name"]: o for o in command.payload["options"]}
        assert {f"/sync {name}" for name in subcommands} == set(SLASH_COMMANDS)
        assert [o["name"] for o in subcommands["users"]["options"]] == ["dry_run"]
        assert h.discord.app_commands.stats.overwrites == [(h.guild.id, ("sync",))]
        assert await ensure_registered(h.bot, h.guild.id) == [], "a restart writes nothing"
        assert len(h.discord.app_commands.stats.overwrites) == 1

        record = await h.slash("sync users", dry_run=True)
        assert record.callback.type == DEFERRED
        answer = await h.answer_to(record, lambda text: text.startswith("✅"))
        summary = await h.wait_for_summary("User sync")
        live = h.log_messages()[0]
        assert [v.content for v in answer.versions[:2]] == [
            "",  # "thinking…"
            f"Started; follow it here: {jump_url(h, live.id)}",
        ]
        plan = f"Would write: 0 created, {STALE} updated, 0 marked left"
        assert plan in summary and "dry run of users" in summary
        assert plan in answer.content and "dry run of users" in answer.content
        assert f"In the log channel: {jump_url(h, live.id)}" in answer.content
        assert h.site_writes() == 0, "a dry run wrote to the site"
        assert len(await h.mismatches()) == STALE


async def test_a_non_moderator_does_not_see_the_commands_and_is_refused_when_shown_them(
    tmp_path,
):
    async with slash_world(tmp_path=tmp_path) as h:
        await h.slash_commands_registered()
        outsider = h.guild.ordinary_member_id
        with pytest.raises(CommandHidden):
            await h.slash("sync users", member_id=outsider)

        # A server administrator shows the commands to everyone (Server Settings →
        # Integrations): seeing them makes nobody a moderator.
        h.discord.set_command_permissions(h.guild.id, "sync", {h.guild.id: True})
        for invocation in ("sync users", "sync cancel"):
            refused = await h.slash(invocation, member_id=outsider)
            assert refused.callback.type == CHANNEL_MESSAGE
            assert refused.callback.data["flags"] & EPHEMERAL
            assert refused.callback.data["content"] == "Only moderators can run sync commands."
        assert h.log_messages() == [], "no run was started"
        assert h.site_writes() == 0
        assert not h.cog.runs.history


async def test_a_deferred_run_is_followed_up_with_its_live_message_and_its_summary(tmp_path):
    async with slash_world(tmp_path=tmp_path) as h:
        await h.slash_commands_registered()
        record = await h.slash("sync users")
        assert record.callback.type == DEFERRED
        summary = await h.wait_for_summary("User sync")
        answer = await h.answer_to(record, lambda text: text.startswith("✅"))
        live = h.log_messages()[0]
        assert live.content == summary
        assert summary.startswith("✅") and "users · command by Member 1" in summary
        assert f"Wrote: 0 created, {STALE} updated, 0 marked left" in summary
        started, ended = answer.versions[1].content, answer.content
        assert started == f"Started; follow it here: {jump_url(h, live.id)}"
        assert ended.startswith(summary.rsplit("\n", 1)[0]), "the answer ends as the summary"
        assert record.followup_message_ids == [], "the follow-up replaced the thinking message"
        assert await h.mismatches() == []

        status = await h.slash("sync status")
        shown = (await h.answer_to(status)).content
        assert shown.startswith("No sync is running.")
        assert "(command by member000001" in shown


async def test_without_the_message_content_intent_the_bot_runs_slash_commands(tmp_path):
    # The application has no Message Content intent: a bot asking for it is refused (4014).
    no_content = {"privileged_intents": GUILD_MEMBERS}
    async with slash_world(
        tmp_path=tmp_path, discord_options=no_content, adjust_settings=slash_commands_only
    ) as h:
        [session] = h.discord.gateway.sessions.values()
        assert not session.intents & MESSAGE_CONTENT
        assert h.bot.get_command("sync") is None, "no prefix command registered"
        ignored = h.say("!sync users")
        await h.slash_commands_registered()
        notice = await h.wait_for_log(lambda text: text == slash_only_notice())

        record = await h.slash("sync users")
        assert record.callback.type == DEFERRED
        summary = await h.wait_for_summary("User sync")
        assert f"Wrote: 0 created, {STALE} updated, 0 marked left" in summary
        await h.answer_to(record, lambda text: text.startswith("✅"))
        assert await h.mismatches() == []
        assert [m.content for m in h.log_messages()].count(notice.content) == 1
        commands_channel = h.discord.channel_messages(h.guild.commands_channel_id)
        replies = [m for m in commands_channel if m.message_reference is not None]
        assert replies == [], f"the prefix command {ignored.content!r} was answered"


async def test_an_expired_interaction_token_does_not_lose_the_runs_summary(tmp_path):
    async with slash_world(tmp_path=tmp_path) as h:
        await h.slash_commands_registered()
        h.site.hold.arm(BULK_PATCH, after_items=0)  # the run's first write waits at the gate
        record = await h.slash("sync users")
        started = await h.answer_to(record, lambda text: text.startswith("Started"))
        await eventually(lambda: h.site.hold.waiting >= 1)

        h.discord.interaction_clock.advance(TOKEN_LIFETIME_S + 1)  # a run longer than 15 min
        h.site.hold.release()
        summary = await h.wait_for_summary("User sync")
        assert summary.startswith("✅") and f"{STALE} updated" in summary
        await h.discord.wait_until(lambda: record.expired_token_calls > 0)
        assert started.content.startswith("Started; follow it here: "), "left as it was"
        assert [m.content for m in h.log_messages()].count(summary) == 1
        assert await h.mismatches() == []


async def test_a_slash_command_acknowledged_too_late_runs_nothing(tmp_path):
    async with slash_world(tmp_path=tmp_path) as h:
        await h.slash_commands_registered()
        moderator = h.guild.state.members[h.guild.moderator_id]
        record = h.discord.interactions.invoke(
            h.guild.commands_channel_id, moderator, "sync users", {}
        )
        # Before the bot can even read it: its deferral comes after Discord's 3 seconds.
        h.discord.interaction_clock.advance(3.5)
        await h.discord.wait_until(lambda: record.late_callbacks == 1)
        assert h.discord.interaction_failed(record)
        status = await h.slash("sync status")  # answered after the late one was given up
        assert (await h.answer_to(status)).content.startswith("No sync is running.")
        assert h.log_messages() == [], "no run was started"
        assert h.site_writes() == 0


async def test_a_bot_invited_without_the_commands_scope_says_so_and_keeps_prefix_commands(
    tmp_path,
):
    def without_scope(guild, site) -> None:
        guild.discord.withhold_command_scope(guild.id)
        moderators_see_the_commands(guild, site)

    async with running_bot(
        tmp_path, members=MEMBERS, seed_site=False, prepare=without_scope, settings=NO_STARTUP
    ) as h:
        await h.slash_commands_registered()
        warning = await h.wait_for_log(lambda text: "**Slash commands**" in text)
        assert "HTTP 403" in warning.content and "`applications.commands`" in warning.content
        assert "The prefix commands still work." in warning.content
        assert h.discord.registered_commands(h.guild.id) == []
        await h.reply_to(h.say("!sync users --dry-run"))
        assert "Would write" in await h.wait_for_summary("User sync")
