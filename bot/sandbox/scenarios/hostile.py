"""Bad input and hostile users: records the site cannot store, names that try to ping or format,
members who are not moderators pressing every button and typing every command."""

from __future__ import annotations

import asyncio
import re
import time

from bot.sandbox.discord.state import StoredMessage
from bot.sandbox.sandbox import Sandbox, expect
from bot.sandbox.scenarios.guard import press, raise_guard_question
from bot.sandbox.scenarios.registry import scenario
from bot.sandbox.world import HELPERS

NAME_LIMIT = 32
"""The site's limit on `name` and `display_name`."""
MAX_ID = 2**63 - 1
HOSTILE_NICK = "@everyone **mod** @here"
HOSTILE_ROLE = "@everyone <@&1> **bold** `x`"
HOSTILE_NAMES = ("@everyone", "<@1234567890> **b** @here", "`code` ||spoiler|| __u__")
RAW_PINGS = re.compile(r"@everyone|@here|<(@[!&]?|#)\d+>")
ONLY_MODERATORS = "Only moderators"
BURST = 20


@scenario(
    "bad-records",
    "members the site cannot store (names over 32 characters, a role the site lacks) among "
    "good ones (names at the limit, ids near 2^63-1, names with @everyone, mentions and "
    "markdown): good ones synced, bad ones isolated and listed, messages ping nobody",
    default_members=20_000,
    rehearsable=True,
    full_sync=True,  # a moderator's !sync roles and !sync users
)
async def bad_records(sandbox: Sandbox) -> None:
    guild, discord = sandbox.guild, sandbox.discord
    moderator = guild.moderator_id
    discord.update_member(guild.id, moderator, nick=HOSTILE_NICK)
    sandbox.say("Members join with ids near 2^63-1, names at and over the limit, hostile names.")
    good = [
        discord.guilds.add_member(guild.id, username=f"max.id.{n}", user_id=MAX_ID - n).user.id
        for n in range(2)
    ]
    good.append(discord.add_member(guild.id, "a" * NAME_LIMIT, nick="n" * NAME_LIMIT).user.id)
    for name in HOSTILE_NAMES:
        good.append(discord.add_member(guild.id, "hostile", nick=name).user.id)
    too_long = discord.add_member(guild.id, "b" * (NAME_LIMIT + 1)).user.id
    renamed = guild.ordinary_member_id
    discord.update_member(guild.id, renamed, nick="x" * (NAME_LIMIT + 8))
    sandbox.isolated |= {too_long, renamed}

    sandbox.say(f"The site loses the role {HELPERS}; a member is given it on Discord.")
    helpers = guild.role_id(HELPERS)
    await sandbox.client.delete_role(helpers)
    lacking = next(
        m.id
        for m in guild.state.members.values()
        if helpers not in m.roles and m.id not in guild.protected_ids() | sandbox.isolated
    )
    discord.update_member(guild.id, lacking, roles=[*guild.state.members[lacking].roles, helpers])
    await sandbox.wait_for_log(lambda text: str(lacking) in text and text.startswith("⚠️"))

    sandbox.say("A role with a hostile name is created and deleted.")
    hostile_role = discord.create_role(guild.id, HOSTILE_ROLE)
    await _until_site_role(sandbox, hostile_role.id, present=True)
    discord.delete_role(guild.id, hostile_role.id)
    await _until_site_role(sandbox, hostile_role.id, present=False)

    sandbox.say("A moderator (nicknamed to ping everyone) repairs roles, then users.")
    sandbox.command("!sync roles")
    await sandbox.wait_for_summary("Role sync")
    sandbox.command("!sync users")
    await sandbox.wait_for_summary("User sync")
    await sandbox.wait_until_site_matches()

    listed = sandbox.listed_user_ids()
    expect(lacking in listed, f"the member with a role the site lacked ({lacking}) is not listed")
    wrong = [user_id for user_id in good if user_id in listed]
    expect(not wrong, f"good records were reported as bad: {wrong}")
    for user_id in good:
        stored = await sandbox.client.get_user(user_id)
        expect(stored is not None, f"good user {user_id} is not on the site")
    unsafe = _unsafe_messages(sandbox)
    sandbox.facts["unsafe_messages"] = len(unsafe)
    expect(not unsafe, f"bot messages that could ping or format: {unsafe[:3]}")
    texts = "\n".join(sandbox.log_texts())
    expect("\\*\\*mod\\*\\*" in texts, "the moderator's name is not shown escaped")


async def _until_site_role(sandbox: Sandbox, role_id: int, *, present: bool) -> None:
    deadline = time.monotonic() + sandbox.run_timeout()
    while any(role.id == role_id for role in await sandbox.client.list_roles()) != present:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"role {role_id} {'never reached' if present else 'stayed on'} the site"
            )
        await asyncio.sleep(0.2)


def _unsafe_messages(sandbox: Sandbox) -> list[str]:
    """Bot messages allowed to ping, or showing a raw mention or a hostile name unescaped."""
    bot_id = sandbox.discord.bot_user.id
    found = []
    for channel in sandbox.guild.state.messages.values():
        for message in channel.values():
            if message.author.id != bot_id:
                continue
            allowed = message.allowed_mentions or {}
            if allowed.get("parse") != [] or allowed.get("users") or allowed.get("roles"):
                found.append(f"allowed_mentions {allowed} on {message.content[:80]!r}")
            for version in message.versions:
                if RAW_PINGS.search(version.content) or "**mod**" in version.content:
                    found.append(version.content[:120])
    return found


@scenario(
    "hostile-users",
    "members who are not moderators type sync commands and press the guard's buttons; "
    f"{BURST} sync commands arrive within a second: all refused but one run, no crash",
    default_members=20_000,
    rehearsable=True,
    full_sync=True,  # the restarted bot's start-up sync, and the one !sync run let through
)
async def hostile_users(sandbox: Sandbox) -> None:
    guild, discord = sandbox.guild, sandbox.discord
    outsider, moderator = guild.ordinary_member_id, guild.moderator_id
    question = await raise_guard_question(sandbox)
    for button in ("apply", "details", "cancel"):
        answer = await press(sandbox, question, button, outsider)
        expect(ONLY_MODERATORS in answer, f"an outsider's {button} was not refused")
    for command in ("!sync users", "!sync cancel", "!sync roles --dry-run", "!sync status"):
        reply = await _reply(
            sandbox, discord.post_message(guild.commands_channel_id, outsider, command)
        )
        expect(reply.startswith(ONLY_MODERATORS), f"{command!r} by an outsider: {reply!r}")
    sandbox.say("Outsiders were refused; a moderator applies the guard's plan.")
    await press(sandbox, question, "apply", moderator)
    await sandbox.wait_for_summary("User sync", nth=2, within=sandbox.run_timeout())

    sandbox.say(f"{BURST} sync commands arrive within a second, half of them from outsiders.")
    runs_before = len(sandbox.finished_runs("User sync"))
    commands = [
        discord.post_message(
            guild.commands_channel_id, moderator if n % 2 == 0 else outsider, "!sync users"
        )
        for n in range(BURST)
    ]
    replies = [await _reply(sandbox, command) for command in commands]
    await sandbox.wait_for_summary("User sync", nth=runs_before + 1, within=sandbox.run_timeout())
    # Every command is answered, and a command takes its run's lock before it answers (nothing
    # is queued): no run can start from the burst after its replies.
    started = sum(reply.startswith("Started") for reply in replies)
    refused = sum(reply.startswith(ONLY_MODERATORS) for reply in replies)
    sandbox.facts.update(burst_runs_started=started, burst_refused=refused)
    expect(started == 1, f"{started} runs started for {BURST} commands: {replies}")
    expect(refused == BURST // 2, f"{refused} outsiders refused: {replies}")
    expect(len(sandbox.finished_runs("User sync")) == runs_before + 1, "more than one run")
    tracebacks = sandbox.bot_log_count("Traceback")
    sandbox.facts["tracebacks"] = tracebacks
    expect(tracebacks == 0, "the bot logged a traceback")


async def _reply(sandbox: Sandbox, command: StoredMessage, within: float = 30.0) -> str:
    channel = sandbox.guild.commands_channel_id

    def found() -> str | None:
        for message in sandbox.discord.channel_messages(channel):
            if str((message.message_reference or {}).get("message_id")) == str(command.id):
                return message.content
        return None

    await sandbox.discord.wait_until(lambda: found() is not None, within=within)
    return found() or ""
