"""The sync commands as slash commands, next to (or instead of) the prefix ones.

The `!sync` group is a hybrid group: one definition answers `!sync users --dry-run` and
`/sync users dry_run:true`, through the same moderator check, error handler and run code. This
module holds what only the slash side needs:

- registration on the configured guild only, checked at start-up against what Discord already
  has (`ensure_registered`): the bot syncs the tree when its commands are missing or differ,
  whether or not the host syncs it too (see the function for why this is detected, not a setting);
- the answer to an interaction: deferred at once (Discord fails an interaction not answered
  within 3 s, and a run's first answer waits for the journal and the live message), followed up
  with the link to the run's live message in the log channel, and, when the run ends while the
  interaction's token lives (15 minutes), edited to show its outcome (`answer_end`);
- `SYNC_PREFIX_COMMANDS`: with prefix commands off, the bot needs no Message Content intent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from guild_sync.exts.sync._messages import fit, literal
from guild_sync.exts.sync._rejections import with_note
from guild_sync.exts.sync._reporter import NO_PINGS

log = logging.getLogger(__name__)

PREFIX_COMMANDS_ENV = "SYNC_PREFIX_COMMANDS"
MODERATOR_PERMISSIONS = discord.Permissions(manage_roles=True)
"""Who sees the slash commands before a guild's administrators say otherwise (Server Settings →
Integrations). Manage Roles: a member who can change members' roles can already change what a
sync writes (the site's roles and users follow Discord's), so showing them the commands hands
nobody a new power, while members without it never see them. The cog's own check still decides
who may run them (administrators and SYNC_MODERATOR_ROLE_IDS), so a member who sees them through
an Integrations override without being a moderator is refused."""
SLASH_COMMANDS = ("/sync users", "/sync roles", "/sync status", "/sync cancel")


def command_prefix(settings: Any) -> str:
    """How the bot's messages name its commands (`!sync users` or `/sync users`): an operator
    who turned prefix commands off must not be told to type one."""
    return str(settings.prefix) if settings.prefix_commands else "/"


def parse_options(options: str) -> bool:
    """A prefix command's options: only `--dry-run` (dry run) or nothing."""
    words = options.split()
    unknown = [w for w in words if w != "--dry-run"]
    if unknown:
        raise commands.BadArgument(
            f"Unknown option {literal(unknown[0])}; the only option is `--dry-run`."
        )
    return bool(words)


class DryRun(commands.Converter[bool], app_commands.Transformer):
    """The users and roles commands' one option, in each syntax's own terms: `--dry-run`
    after a prefix command (the rest of the message, so a typo is named, not ignored), a
    boolean option `dry_run` of the slash command. A hybrid command's parameters are shared,
    and a plain `bool` would make the prefix side read `--dry-run` as a yes/no word and fail."""

    async def convert(self, ctx: commands.Context, argument: str) -> bool:
        return parse_options(argument)

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.boolean

    async def transform(self, interaction: discord.Interaction, value: Any) -> bool:
        return bool(value)


class InteractionLost(commands.CommandError):
    """The interaction could not be acknowledged (too late: Discord already told the member the
    application did not respond), so the command does not run: its answer has nowhere to go,
    and the member, told it failed, would not expect a run."""


async def defer(ctx: commands.Context) -> None:
    """Acknowledge a slash command before anything slow (the journal, the live message, the
    site): the member sees "thinking…", and the answer follows up within 15 minutes."""
    interaction = ctx.interaction
    if interaction is None or interaction.response.is_done():
        return
    try:
        await interaction.response.defer(thinking=True)
    except discord.HTTPException as error:
        log.warning("could not acknowledge /%s in time: %s", _invocation(interaction), error)
        raise InteractionLost(str(error)) from error


def _invocation(interaction: discord.Interaction) -> str:
    return interaction.command.qualified_name if interaction.command else "?"


async def answer_end(interaction: discord.Interaction, final: str, jump_url: str | None) -> None:
    """Show the run's outcome in the slash command's answer (which said where to follow it).
    The log channel has the outcome anyway (the run's live message), so an expired token (a run
    longer than 15 minutes) or a refused edit loses nothing: it is logged, not retried."""
    if interaction.is_expired():
        log.info(
            "run outlived the interaction token of /%s; its outcome is in the log channel",
            _invocation(interaction),
        )
        return
    text = with_note(final, f"In the log channel: {jump_url}") if jump_url else final
    try:
        await interaction.edit_original_response(content=fit(text), allowed_mentions=NO_PINGS)
    except discord.HTTPException as error:
        log.warning("could not show the run's outcome in the interaction's answer: %s", error)


# -- registration ----------------------------------------------------------------------------


def _option_shape(option: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": int(option["type"]),
        "name": option["name"],
        "description": option.get("description") or "",
        "required": bool(option.get("required")),
        "choices": sorted((c["name"], str(c["value"])) for c in option.get("choices") or ()),
        "channel_types": sorted(option.get("channel_types") or ()),
        "autocomplete": bool(option.get("autocomplete")),
        "bounds": [option.get(k) for k in ("min_value", "max_value", "min_length", "max_length")],
        "options": [_option_shape(o) for o in option.get("options") or ()],
    }


def command_shape(payload: Mapping[str, Any]) -> str:
    """What Discord shows members of a command, comparable between the tree's payload and
    Discord's copy (which adds ids and versions, and may add or drop empty fields).
    Localisations are left out: a host's translator adds them to what it syncs."""
    permissions = payload.get("default_member_permissions")
    shape = {
        "type": int(payload.get("type") or 1),
        "name": payload["name"],
        "description": payload.get("description") or "",
        "default_member_permissions": None if permissions is None else int(permissions),
        "nsfw": bool(payload.get("nsfw")),
        "options": [_option_shape(o) for o in payload.get("options") or ()],
    }
    return json.dumps(shape, sort_keys=True)


def registered_payload(command: app_commands.AppCommand) -> dict[str, Any]:
    """Discord's copy of a command as a payload (`AppCommand.to_dict` leaves out the default
    permissions and nsfw, which decide who sees it)."""
    payload: dict[str, Any] = dict(command.to_dict())
    permissions = command.default_member_permissions
    payload["default_member_permissions"] = None if permissions is None else permissions.value
    payload["nsfw"] = command.nsfw
    return payload


def missing_from(wanted: Iterable[Mapping[str, Any]], registered: Iterable[Mapping]) -> list[str]:
    """The names of the wanted commands Discord does not have as wanted."""
    have = {command_shape(payload) for payload in registered}
    return [str(p["name"]) for p in wanted if command_shape(p) not in have]


async def ensure_registered(bot: commands.Bot, guild_id: int) -> list[str]:
    """Make Discord's commands for the guild what the tree holds for it; the names synced
    (empty: Discord already had them, and nothing was written).

    Detected, not configured: a host may sync the tree itself (pydis_core's loader does, once
    its extension tasks are scheduled) or never (the project's runner, a plain bot), and an
    operator cannot be expected to know which. One read says whether a sync is needed, so a
    host that synced costs one GET, a restart rewrites nothing (Discord allows 200 command
    creations a day per guild), and a host whose sync ran before this cog's commands were in
    its tree is repaired. A sync writes every guild command in the tree (a bulk overwrite),
    which is what the host's own sync does."""
    guild = discord.Object(guild_id)
    tree = bot.tree
    wanted = [command.to_dict(tree) for command in tree.get_commands(guild=guild, type=None)]
    registered = [registered_payload(c) for c in await tree.fetch_commands(guild=guild)]
    missing = missing_from(wanted, registered)
    if missing:
        await tree.sync(guild=guild)
    return missing


def registration_failure(error: discord.HTTPException, prefix_on: bool) -> str:
    """The log channel's words for a registration Discord refused."""
    if isinstance(error, discord.Forbidden):
        why = (
            "Discord refused them (HTTP 403): the bot was added to the server without the "
            "`applications.commands` scope. Invite it again with that scope (the server's "
            "settings and roles are kept), then restart the bot."
        )
    else:
        why = f"Discord answered HTTP {error.status}; restarting the bot tries again."
    rest = (
        " The prefix commands still work."
        if prefix_on
        else " Prefix commands are off, so no sync command works until then."
    )
    return f"⚠️ **Slash commands** could not be registered in this server: {why}{rest}"


def slash_only_notice() -> str:
    commands_list = " · ".join(f"`{c}`" for c in SLASH_COMMANDS)
    return (
        f"ℹ️ Prefix commands are off (`{PREFIX_COMMANDS_ENV}=false`): this bot answers slash "
        f"commands only — {commands_list}. It does not read message content."
    )
