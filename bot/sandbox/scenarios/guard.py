"""The destructive-diff guard: an automatic sync that would mark many users as left asks first;
and any sync looks a sample of its leavers up on Discord before it marks anyone as left."""

from __future__ import annotations

from bot.sandbox.discord.state import StoredMessage
from bot.sandbox.sandbox import Sandbox, expect
from bot.sandbox.scenarios.registry import scenario
from guild_sync.site.records import User

STRANGER_SHARE = 0.15
"""Site users the guild lacks, as a share of members: above the guard's 10 %."""
HIDDEN_SHARE = 0.15
"""Members Discord stops delivering to the bot (its cache misses them), as a share of members."""
QUESTION = "🛑 An automatic user sync"
WITHHELD = "nobody was marked as left"
"""What the bot says in the log channel when its sample of leavers is still in the guild."""


def guard_questions(sandbox: Sandbox) -> list[StoredMessage]:
    return [
        message
        for message in sandbox.discord.channel_messages(sandbox.guild.log_channel_id)
        if message.content.startswith(QUESTION)
    ]


async def next_guard_question(sandbox: Sandbox, asked_before: int) -> StoredMessage:
    """The guard question after the first `asked_before` ones."""
    await sandbox.wait_for_log(
        lambda _: len(guard_questions(sandbox)) > asked_before, within=sandbox.run_timeout()
    )
    return guard_questions(sandbox)[asked_before]


async def raise_guard_question(sandbox: Sandbox) -> StoredMessage:
    """Give the site users the guild lacks and restart the bot: its start-up sync would mark
    them all as left, as it would if it saw only part of the guild, so it asks first."""
    strangers = int(sandbox.members * STRANGER_SHARE)
    sandbox.say(f"The site gains {strangers:,} users the guild lacks; the bot restarts.")
    await sandbox.client.create_users(
        User(1_000 + n, f"stranger{n}", "", 0, frozenset(), True) for n in range(strangers)
    )
    sandbox.bot.restart()
    await sandbox.wait_for_log(lambda text: text.startswith(QUESTION), within=120)
    return next(
        message
        for message in sandbox.discord.channel_messages(sandbox.guild.log_channel_id)
        if message.content.startswith(QUESTION)
    )


CLICK_ATTEMPTS = 3


async def press(sandbox: Sandbox, question: StoredMessage, button: str, member_id: int) -> str:
    """A member presses one of the question's buttons; the bot's answer to them, if any.

    A press can come too early: discord.py registers a message's buttons once the request that
    posted it returns, and when that message took the channel's last message token (messages of
    the bot process that ran just before count too), discord.py holds the request until the
    bucket resets, up to 5 s. A click before then reaches no buttons and is never answered, as
    on Discord, so the member presses again, as a moderator would."""
    custom_id = next(c for c in question.custom_ids() if c.endswith(button))
    for _ in range(CLICK_ATTEMPTS):
        try:
            click = await sandbox.discord.click_button(
                question.id, custom_id, channel_id=sandbox.guild.log_channel_id, member_id=member_id
            )
        except TimeoutError:
            continue
        return (click.callback.data or {}).get("content", "") if click.callback else ""
    raise RuntimeError(f"the bot answered none of {CLICK_ATTEMPTS} presses of {button!r}")


@scenario(
    "partial-cache",
    "the site holds 15% more users than the bot sees: the start-up sync asks a moderator "
    "before marking them as left; the moderator reads the details and applies. Then Discord "
    "stops delivering 15% of the members: a moderator's !sync users looks a sample of its "
    "leavers up on Discord and marks nobody as left",
    default_members=20_000,
    rehearsable=True,
    full_sync=True,  # the restarted bot's start-up sync, and a moderator's !sync users
)
async def partial_cache(sandbox: Sandbox) -> None:
    question = await raise_guard_question(sandbox)
    moderator = sandbox.guild.moderator_id
    details = await press(sandbox, question, "details", moderator)
    sandbox.say(f"A moderator reads the details: {details.splitlines()[0] if details else '?'}")
    if "mark" not in details or "as left" not in details:
        raise RuntimeError(f"the guard's details do not say what would be marked: {details!r}")
    await press(sandbox, question, "apply", moderator)
    await sandbox.wait_for_summary("User sync", nth=2, within=sandbox.run_timeout())
    await moderator_run_on_a_partial_cache(sandbox)


async def moderator_run_on_a_partial_cache(sandbox: Sandbox) -> None:
    """Discord stops delivering 15% of the members to the bot: its member list is partial and
    looks whole (discord.py counts the same members it holds). The start-up sync's guard asks;
    the moderator cancels and runs `!sync users` themselves, which the guard never stops, and
    the run's sample of leavers, looked up on Discord, stops it marking them as left. Once
    Discord delivers every member again, the next start-up sync has nothing to mark."""
    guild = sandbox.guild
    keep = {guild.state.owner_id, sandbox.discord.bot_user.id, guild.moderator_id}
    ordinary = sorted(set(guild.state.members) - keep)
    hidden = ordinary[-int(sandbox.members * HIDDEN_SHARE) :]
    sandbox.say(
        f"Discord stops delivering {len(hidden):,} members ({HIDDEN_SHARE:.0%}) to the bot, "
        "which restarts with a member list that looks complete."
    )
    asked = len(guard_questions(sandbox))
    sandbox.discord.hide_from_gateway(guild.id, hidden)
    sandbox.bot.restart()
    question = await next_guard_question(sandbox, asked)
    sandbox.say("The guard asks about the start-up sync; the moderator cancels it.")
    await press(sandbox, question, "cancel", guild.moderator_id)
    await sandbox.wait_for_log(lambda t: t.startswith("Guard for the automatic user sync: cancel"))
    sandbox.command("!sync users")
    summary = await sandbox.wait_for_summary("User sync", within=sandbox.run_timeout())
    withheld = [text for text in sandbox.log_texts() if WITHHELD in text]
    expect(bool(withheld), f"the moderator's run did not say it withheld the leaves: {summary!r}")
    sandbox.say(f"The run says: {withheld[0].splitlines()[0]}")
    # From the site itself (over HTTP), not the bot's counters: nobody hidden was marked left.
    hidden_ids = set(hidden)
    marked_left = 0
    async for page in sandbox.client.iter_user_pages(2_500):
        marked_left += sum(1 for user in page if user.id in hidden_ids and not user.in_guild)
    sandbox.facts["hidden_members"] = len(hidden)
    sandbox.facts["hidden_marked_left"] = marked_left
    expect(marked_left == 0, f"the run on a partial cache marked {marked_left:,} members as left")

    sandbox.say("Discord delivers every member again; the bot restarts and syncs at start-up.")
    sandbox.discord.hide_from_gateway(guild.id, ())
    sandbox.bot.restart()
    rerun = await sandbox.wait_for_summary("User sync", within=sandbox.run_timeout())
    expect(" 0 marked left" in rerun, f"the rerun on the whole member list: {rerun!r}")
