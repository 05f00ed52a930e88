"""Message edit rate limits: discord.py either waits on the advertised bucket or retries 429s,
and every edit lands in order."""

from __future__ import annotations

import time

from discord.ext import commands

from bot.sandbox.discord import LoopbackDiscord
from bot.sandbox.discord.ratelimit import RateLimitRule

from .conftest import make_bot, running

EDITS = 8


def editing_bot(edits: int) -> commands.Bot:
    bot = make_bot()

    @bot.command()
    async def progress(ctx: commands.Context) -> None:
        message = await ctx.send("progress 0")
        for step in range(1, edits + 1):
            await message.edit(content=f"progress {step}")

    return bot


async def _run_edits(emulator: LoopbackDiscord) -> tuple[list[str], float, list]:
    guild = emulator.create_guild(member_count=10)
    channel_id = emulator.channel_named(guild.id, "bot-log")
    owner_id = guild.owner_id
    async with running(emulator, editing_bot(EDITS)):
        started = time.perf_counter()
        emulator.post_message(channel_id, owner_id, "!progress")
        await emulator.wait_until(lambda: emulator.message_stats.edits == EDITS, within=30)
        elapsed = time.perf_counter() - started
    [_, progress] = emulator.channel_messages(channel_id)
    return [version.content for version in progress.versions], elapsed, progress.versions


async def test_edits_beyond_the_limit_get_429_and_are_retried_in_order() -> None:
    async with LoopbackDiscord(advertise_rate_limits=False) as emulator:
        contents, elapsed, versions = await _run_edits(emulator)
        assert contents == [f"progress {step}" for step in range(EDITS + 1)]
        hits = emulator.rate_limit_hits
        assert hits and {hit.bucket for hit in hits} == {"message_edit"}
        assert all(0 < hit.retry_after <= 5 for hit in hits)
        # No window of 5 s ever held more than 5 accepted edits.
        edit_times = [version.at for version in versions[1:]]
        for first, sixth in zip(edit_times, edit_times[5:], strict=False):
            assert (sixth - first).total_seconds() >= 5 - 0.05
        assert elapsed >= 5 - 0.05
        assert emulator.unimplemented_calls == []


async def test_advertised_buckets_make_discord_py_wait_without_429s() -> None:
    rules = {"message_send": RateLimitRule(5, 5.0), "message_edit": RateLimitRule(5, 1.0)}
    async with LoopbackDiscord(rate_limits=rules) as emulator:
        contents, elapsed, _ = await _run_edits(emulator)
        assert contents == [f"progress {step}" for step in range(EDITS + 1)]
        assert emulator.rate_limit_hits == []
        assert elapsed >= 1 - 0.05
        assert emulator.unimplemented_calls == []
