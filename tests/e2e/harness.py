"""The real bot, in this process, against the loopback Discord and the sandbox site.

Everything talks over real sockets on 127.0.0.1: discord.py's HTTP and gateway clients to the
loopback Discord, the cog's site client to the sandbox site.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from discord.ext import commands

from bot.runner import SYNC_EXTENSION, build_bot
from bot.sandbox.discord import LoopbackDiscord, point_discord_py_at
from bot.sandbox.discord.interactions import InteractionRecord
from bot.sandbox.discord.state import StoredMessage
from bot.sandbox.site import DEFAULT_TOKEN, FaultConfig, SandboxSite
from bot.sandbox.site.cost import CostConfig
from bot.sandbox.world import SandboxGuild, mismatches
from guild_sync.config import Settings, load_settings
from guild_sync.exts.sync._cog import SyncCog
from guild_sync.exts.sync._reporter import is_final_summary
from guild_sync.site import SiteClient
from tests.site_bounds import broken_bounds

MESSAGE_LIMIT = 2000
NO_STARTUP = {"SYNC_STARTUP": "false"}
"""Settings for tests that start from a matching site and drive the sync themselves."""


def stale_site(every: int = 1) -> Callable[[SandboxGuild, SandboxSite], None]:
    """A `prepare` for `running_bot(seed_site=False)`: the site holds every member, but every
    `every`-th one with an outdated display name, so a user sync has that many updates."""

    def prepare(guild: SandboxGuild, site: SandboxSite) -> None:
        users = [
            replace(user, display_name=f"{user.display_name} (old)") if i % every == 0 else user
            for i, user in enumerate(guild.expected_users())
        ]
        site.store.seed(guild.expected_roles(), users)

    return prepare


async def eventually(condition: Callable[[], bool], within: float = 30.0) -> None:
    """Poll a condition on the bot's side (not visible to the emulator's waiters)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within:g} s")
        await asyncio.sleep(0.05)


class ErrorRecords(logging.Handler):
    """ERROR records of the cog and of discord.py: a message Discord refused (too long, say)
    or a command that raised shows up here and nowhere in the emulator's messages."""

    WATCHED = ("guild_sync.exts.sync", "discord")

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(self.WATCHED):
            self.records.append(record)


@dataclass
class Harness:
    discord: LoopbackDiscord
    guild: SandboxGuild
    site: SandboxSite
    bot: commands.Bot
    client: SiteClient
    errors: ErrorRecords

    @property
    def cog(self) -> SyncCog:
        # Not isinstance: discord.py drops the extension's modules from sys.modules when the
        # bot closes, so every test's bot loads a fresh copy of the SyncCog class.
        cog = self.bot.get_cog("Sync")
        assert cog is not None and type(cog).__name__ == SyncCog.__name__
        return cog  # type: ignore[return-value]

    def log_messages(self) -> list[StoredMessage]:
        return self.discord.channel_messages(self.guild.log_channel_id)

    def log_texts(self) -> list[str]:
        return [m.content for m in self.log_messages()]

    async def wait_for_log(
        self, predicate: Callable[[str], bool], within: float = 30.0
    ) -> StoredMessage:
        def found() -> StoredMessage | None:
            return next((m for m in self.log_messages() if predicate(m.content)), None)

        await self.discord.wait_until(lambda: found() is not None, within)
        message = found()
        assert message is not None
        return message

    async def wait_for_summary(self, title: str, nth: int = 1, within: float = 60.0) -> str:
        """The `nth` finished run message with this title (its final content)."""

        def finished() -> list[str]:
            return [t for t in self.log_texts() if is_final_summary(t, title)]

        await self.discord.wait_until(lambda: len(finished()) >= nth, within)
        return finished()[nth - 1]

    def say(self, content: str, author_id: int | None = None) -> StoredMessage:
        author = self.guild.moderator_id if author_id is None else author_id
        return self.discord.post_message(self.guild.commands_channel_id, author, content)

    async def reply_to(self, command: StoredMessage, within: float = 30.0) -> StoredMessage:
        channel = self.guild.commands_channel_id

        def reply() -> StoredMessage | None:
            for message in self.discord.channel_messages(channel):
                reference = message.message_reference or {}
                if str(reference.get("message_id")) == str(command.id):
                    return message
            return None

        await self.discord.wait_until(lambda: reply() is not None, within)
        found = reply()
        assert found is not None
        return found

    async def slash(
        self, invocation: str, member_id: int | None = None, within: float = 10.0, **options: Any
    ) -> InteractionRecord:
        """A member (the moderator unless told) runs `/invocation` (`"sync users"`) with these
        options in the commands channel; returns once the bot has answered the interaction
        (its callback: a message, or a deferral)."""
        member = self.guild.moderator_id if member_id is None else member_id
        channel = self.guild.commands_channel_id
        return await self.discord.slash_command(channel, member, invocation, options, within=within)

    async def answer_to(
        self,
        record: InteractionRecord,
        predicate: Callable[[str], bool] = bool,
        within: float = 30.0,
    ) -> StoredMessage:
        """The interaction's response message once its content satisfies `predicate` (by
        default: has any; a deferred response is an empty "thinking" message until followed
        up)."""

        def answered() -> StoredMessage | None:
            message = self.discord.original_response(record)
            return message if message is not None and predicate(message.content) else None

        await self.discord.wait_until(lambda: answered() is not None, within)
        found = answered()
        assert found is not None
        return found

    async def slash_commands_registered(self, within: float = 30.0) -> None:
        """Wait until the cog has checked (and if needed made) its slash commands' registration."""
        await asyncio.wait_for(self.cog.app_commands_ready.wait(), within)

    async def mismatches(self) -> list[str]:
        return await mismatches(self.client, self.guild)

    async def until_site_matches(self, within: float = 30.0) -> None:
        """Poll the site (over HTTP) until it matches the guild; fail with what still differs."""
        deadline = time.monotonic() + within
        while found := await self.mismatches():
            if time.monotonic() > deadline:
                raise AssertionError(f"site still differs after {within:g} s: {found[:10]}")
            await asyncio.sleep(0.1)

    async def site_user(self, user_id: int):
        user = await self.client.get_user(user_id)
        assert user is not None, f"the site has no user {user_id}"
        return user

    def site_writes(self) -> int:
        """Write requests the site received (answered or not), from its own stats."""
        return sum(
            n
            for route, n in self.site.stats.by_route.items()
            if route.split(" ", 1)[0] in ("POST", "PUT", "PATCH", "DELETE")
        )

    def bot_messages(self) -> list[StoredMessage]:
        """Every message the bot wrote in the guild (log, replies, interaction answers)."""
        bot_id = self.discord.bot_user.id
        return [
            message
            for channel in self.guild.state.messages.values()
            for message in channel.values()
            if message.author.id == bot_id
        ]

    def check_discord_rules(self) -> None:
        """What every test must leave true: only implemented Discord calls, every version of
        every bot message under the limit, no message allowed to ping anyone, no error logged
        by the cog or discord.py."""
        assert self.discord.unimplemented_calls == []
        logged = [f"{r.name}: {r.getMessage()}" for r in self.errors.records]
        assert logged == [], logged
        for message in self.bot_messages():
            for version in message.versions:
                assert len(version.content) <= MESSAGE_LIMIT, version.content[:200]
            allowed = message.allowed_mentions
            assert allowed is not None, f"no allowed_mentions on {message.content[:200]!r}"
            assert allowed.get("parse") == [], (allowed, message.content[:200])
            assert not allowed.get("users") and not allowed.get("roles"), allowed
            assert not allowed.get("replied_user"), allowed


@contextlib.asynccontextmanager
async def running_bot(
    tmp_path: Path,
    *,
    members: int = 200,
    seed_site: bool = True,
    faults: FaultConfig | None = None,
    settings: dict[str, str] | None = None,
    prepare: Callable[[SandboxGuild, SandboxSite], None] | None = None,
    wait_for_startup: bool = True,
    wait_for_ready: bool = True,
    discord_options: dict[str, Any] | None = None,
    site_cost: CostConfig | None = None,
    adjust_settings: Callable[[Settings], Settings] | None = None,
) -> AsyncIterator[Harness]:
    """`wait_for_startup` False waits only until the cog is ready (the member list loaded);
    `wait_for_ready` False yields as soon as the bot is starting. `discord_options` are the
    loopback Discord's (its gateway faults, say); `prepare` may switch them on too, through
    `guild.discord`, before the bot connects. `site_cost` runs the sandbox site's cost model
    (bot/sandbox/site/cost.py; its `time_scale` plays the modelled time faster); without it
    the site answers at once, as every other test wants. `adjust_settings` changes the loaded
    settings before the bot is built (a field the environment cannot set yet, say)."""
    options = discord_options or {}
    site_under_test = SandboxSite(faults=faults, cost=site_cost)
    async with LoopbackDiscord(**options) as discord, site_under_test as site:
        guild = SandboxGuild.build(discord, members)
        if seed_site:
            site.store.seed(guild.expected_roles(), guild.expected_users())
        if prepare is not None:
            prepare(guild, site)
        environ = guild.bot_environ(
            site_url=site.url,
            site_token=DEFAULT_TOKEN,
            state_url=f"sqlite:///{tmp_path / 'state.sqlite3'}",
        )
        # Most tests need not wait out Discord's pace; the live-edit test sets it back to 5 s.
        environ["SYNC_PROGRESS_INTERVAL"] = "1"
        environ.update(settings or {})
        bot_settings = load_settings(environ, env_file=None)
        if adjust_settings is not None:
            bot_settings = adjust_settings(bot_settings)
        undo = point_discord_py_at(discord.api_url, discord.gateway_url)
        bot = build_bot(bot_settings, guild_ready_timeout=0.2)
        client = SiteClient(site.url, DEFAULT_TOKEN)
        runner: asyncio.Task[None] | None = None
        errors = ErrorRecords()
        logging.getLogger().addHandler(errors)
        try:
            await bot.load_extension(SYNC_EXTENSION)
            runner = asyncio.create_task(bot.start(discord.token))
            harness = Harness(discord, guild, site, bot, client, errors)
            cog = harness.cog
            if wait_for_ready:
                waited = cog.startup_done if wait_for_startup else cog.ready
                await asyncio.wait_for(_unless_failed(waited.wait(), runner), 60)
            yield harness
            harness.check_discord_rules()
            kept = {
                "chunk_size": bot_settings.chunk_size,
                "max_in_flight": bot_settings.max_in_flight,
            }
            assert broken_bounds(site.stats.snapshot(), **kept) == []
        finally:
            await bot.close()
            if runner is not None:
                await asyncio.gather(runner, return_exceptions=True)
            await client.close()
            undo()
            logging.getLogger().removeHandler(errors)


async def _unless_failed(waiting, runner: asyncio.Task[None]) -> None:
    """Wait for `waiting`, but surface the bot's own failure instead of timing out."""
    waiter = asyncio.ensure_future(waiting)
    done, _ = await asyncio.wait({waiter, runner}, return_when=asyncio.FIRST_COMPLETED)
    if runner in done:
        waiter.cancel()
        runner.result()
        raise RuntimeError("the bot stopped before it was ready")
