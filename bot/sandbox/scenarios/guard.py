"""The destructive-diff guard: an automatic sync that would mark many users as left asks first."""

from __future__ import annotations

from bot.sandbox.discord.state import StoredMessage
from bot.sandbox.sandbox import Sandbox
from bot.sandbox.scenarios.registry import scenario
from bot.site.records import User

STRANGER_SHARE = 0.15
"""Site users the guild lacks, as a share of members: above the guard's 10 %."""
QUESTION = "🛑 An automatic user sync"


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


async def press(sandbox: Sandbox, question: StoredMessage, button: str, member_id: int) -> str:
    """A member presses one of the question's buttons; the bot's answer to them, if any."""
    custom_id = next(c for c in question.custom_ids() if c.endswith(button))
    click = await sandbox.discord.click_button(
        question.id, custom_id, channel_id=sandbox.guild.log_channel_id, member_id=member_id
    )
    return (click.callback.data or {}).get("content", "") if click.callback else ""


@scenario(
    "partial-cache",
    "the site holds 15% more users than the bot sees: the start-up sync asks a moderator "
    "before marking them as left; the moderator reads the details and applies",
    default_members=20_000,
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
