"""Host bots other than the project's own runner, against the loopback Discord and sandbox site.

`running_bot` (harness.py) builds the project's bot and loads the extension itself before login.
The tests of real hosts must not: how and when the host loads the extension is what they test.
So the world (emulator, site, guild, settings) and the bot's lifetime are split here, and the
harness's `Harness` is reused unchanged once the host's bot exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from discord.ext import commands

from bot.sandbox.discord import LoopbackDiscord, point_discord_py_at
from bot.sandbox.site import DEFAULT_TOKEN, SandboxSite
from bot.sandbox.world import SandboxGuild
from guild_sync.config import Settings, load_settings
from guild_sync.exts.sync._cog import SyncCog
from guild_sync.site import SiteClient
from tests.e2e.harness import ErrorRecords, Harness, _unless_failed, eventually
from tests.site_bounds import broken_bounds

HOST_START_S = 60.0
"""Bound on every wait for the host to log in, load the extension and finish the start-up."""


class HostErrorRecords(ErrorRecords):
    """Also pydis_core's ERROR records: its loader runs each `load_extension` as a detached task
    whose failure (NoEntryPointError, an error in `setup`) is only logged, never raised; and
    `BotBase` itself logs through the root logger."""

    WATCHED = (*ErrorRecords.WATCHED, "pydis_core", "root")


@dataclass
class SandboxWorld:
    """The loopback Discord, the sandbox site and the guild, before any bot exists."""

    discord: LoopbackDiscord
    site: SandboxSite
    guild: SandboxGuild
    environ: dict[str, str]
    """The extension's settings as environment variables, as an operator would give them."""
    client: SiteClient
    errors: HostErrorRecords

    def settings(self) -> Settings:
        return load_settings(self.environ, env_file=None)

    def harness(self, bot: commands.Bot) -> Harness:
        return Harness(self.discord, self.guild, self.site, bot, self.client, self.errors)


@contextlib.asynccontextmanager
async def sandbox_world(
    tmp_path: Path,
    *,
    members: int,
    prepare: Callable[[SandboxGuild, SandboxSite], None] | None = None,
) -> AsyncIterator[SandboxWorld]:
    """The same world as `running_bot`'s (site seeded from the guild unless `prepare` seeds
    it), with discord.py pointed at the emulator for the duration."""
    async with LoopbackDiscord() as discord, SandboxSite() as site:
        guild = SandboxGuild.build(discord, members)
        if prepare is None:
            site.store.seed(guild.expected_roles(), guild.expected_users())
        else:
            prepare(guild, site)
        environ = guild.bot_environ(
            site_url=site.url,
            site_token=DEFAULT_TOKEN,
            state_url=f"sqlite:///{tmp_path / 'state.sqlite3'}",
        )
        environ["SYNC_PROGRESS_INTERVAL"] = "1"  # as running_bot: no need to wait out Discord
        undo = point_discord_py_at(discord.api_url, discord.gateway_url)
        client = SiteClient(site.url, DEFAULT_TOKEN)
        errors = HostErrorRecords()
        logging.getLogger().addHandler(errors)
        try:
            yield SandboxWorld(discord, site, guild, environ, client, errors)
        finally:
            await client.close()
            undo()
            logging.getLogger().removeHandler(errors)


@dataclass
class HostRun:
    """A host bot started against the world: the harness, and the task running `bot.start`."""

    harness: Harness
    runner: asyncio.Task[None]

    async def started(self, within: float = HOST_START_S) -> SyncCog:
        """The cog once the host has loaded it and its start-up sync is over; fails with the
        bot's own error if the bot stopped first. The cog exists only once the host loads it,
        and the host gives no signal for that, so its appearance is polled, as `eventually`
        does, within the same bound."""

        bot = self.harness.bot

        async def started() -> None:
            await eventually(lambda: bot.get_cog("Sync") is not None, within)
            await self.harness.cog.startup_done.wait()

        try:
            await asyncio.wait_for(_unless_failed(started(), self.runner), within)
        except TimeoutError:
            cog = bot.get_cog("Sync")
            state = "never loaded" if cog is None else "loaded but its start-up never ended"
            raise AssertionError(
                f"within {within:g} s the cog was {state} (bot ready: {bot.is_ready()}, "
                f"extensions: {sorted(bot.extensions)})"
            ) from None
        return self.harness.cog


@contextlib.asynccontextmanager
async def hosted(world: SandboxWorld, bot: commands.Bot) -> AsyncIterator[HostRun]:
    """Run the host's bot (it loads the extension however it does); afterwards check what
    `running_bot` checks of every test, then close the bot."""
    run = HostRun(world.harness(bot), asyncio.create_task(bot.start(world.discord.token)))
    try:
        yield run
        run.harness.check_discord_rules()
        settings = world.settings()
        bounds = {"chunk_size": settings.chunk_size, "max_in_flight": settings.max_in_flight}
        assert broken_bounds(world.site.stats.snapshot(), **bounds) == []
    finally:
        await bot.close()
        await asyncio.gather(run.runner, return_exceptions=True)
