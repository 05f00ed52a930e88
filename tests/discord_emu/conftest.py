"""Run a real, unmodified discord.py commands.Bot against the loopback Discord in one loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import discord
import pytest
from discord.ext import commands

from bot.sandbox.discord import LoopbackDiscord, point_discord_py_at

READY_TIMEOUT = 60.0


def sync_intents(*, message_content: bool = True) -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.members = True
    intents.guild_messages = True
    intents.message_content = message_content
    return intents


def make_bot(intents: discord.Intents | None = None) -> commands.Bot:
    return commands.Bot(
        command_prefix="!",
        intents=intents or sync_intents(),
        guild_ready_timeout=0.05,
        chunk_guilds_at_startup=True,
        help_command=None,
    )


@asynccontextmanager
async def running(emulator: LoopbackDiscord, bot: commands.Bot) -> AsyncIterator[commands.Bot]:
    """Starts the bot against the emulator, waits for on_ready (after chunking), and closes it."""
    restore = point_discord_py_at(emulator.api_url, emulator.gateway_url)
    task = asyncio.create_task(bot.start(emulator.token))
    try:
        ready = asyncio.create_task(bot.wait_until_ready())
        done, _ = await asyncio.wait(
            {ready, task}, timeout=READY_TIMEOUT, return_when="FIRST_COMPLETED"
        )
        if task in done:
            ready.cancel()
            task.result()  # raises what stopped the bot
        if ready not in done:
            raise TimeoutError("the bot did not become ready")
        yield bot
    finally:
        await bot.close()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)
        restore()


class Recorder:
    """Collects events a listener saw and lets a test wait for a matching one."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []
        self._changed = asyncio.Event()

    def __call__(self, *args: object) -> None:
        self.seen.append(args)
        self._changed.set()

    async def wait_for(self, matches: Callable[..., bool], within: float = 5.0) -> tuple:
        async with asyncio.timeout(within):
            while True:
                for args in self.seen:
                    if matches(*args):
                        return args
                self._changed.clear()
                await self._changed.wait()


def listen(bot: commands.Bot, event: str) -> Recorder:
    recorder = Recorder()

    async def listener(*args: object) -> None:
        recorder(*args)

    bot.add_listener(listener, f"on_{event}")
    return recorder


@pytest.fixture
async def emulator() -> AsyncIterator[LoopbackDiscord]:
    async with LoopbackDiscord() as emulator:
        yield emulator
    assert emulator.unimplemented_calls == []
