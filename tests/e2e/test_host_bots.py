"""The extension inside real host bots, which load it their own way and at their own time.

The project's runner loads the extension before login, so the cog sees on_ready. Real hosts
do not: pydis_core's `BotBase.load_extensions` (python-discord/bot's way) waits for the guild
to be available and loads every extension it finds in the package as a detached task, after
discord.py has dispatched `ready`; a plain discord.py bot may load it from its own on_ready.
Both must still start the cog (its start-up sync, its commands, its member events), and a
reload mid-life must leave exactly one running copy of it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import discord
import pytest
from discord.ext import commands
from discord.http import HTTPClient
from pydis_core import BotBase
from pydis_core.utils import apply_monkey_patches

import guild_sync.exts
from bot.sandbox.discord.state import StoredMessage
from bot.sandbox.world import MODERATORS
from guild_sync.exts.sync._messages import count
from guild_sync.exts.sync._reporter import is_final_summary
from guild_sync.exts.sync._runs import LOCK_OF_KIND
from tests.e2e.harness import Harness, eventually, stale_site
from tests.e2e.hosts import HostRun, hosted, sandbox_world

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

EXTENSION = "guild_sync.exts.sync"
BULK_PATCH = "PATCH /api/bot/users/bulk_patch"
PYDIS_MEMBERS = 20_000
PYDIS_STALE_EVERY = 50
"""Every 50th member's display name is outdated on the site: 400 updates for the start-up."""
PLAIN_MEMBERS = 500
PLAIN_STALE_EVERY = 10
WAIT_S = 60.0


@pytest.fixture
def pydis_process() -> Iterator[None]:
    """The process as python-discord/bot sets it up: pydis_core's monkey patches applied
    before any extension is imported (its `bot/__init__.py`), so the cog's commands are built
    by the patched decorators. Undone afterwards, since the patches are process-wide."""
    saved: list[tuple[Any, str, Any]] = [
        (commands, "command", commands.command),
        (commands, "group", commands.group),
        (commands.GroupMixin, "command", commands.GroupMixin.command),
        (commands.GroupMixin, "group", commands.GroupMixin.group),
        (HTTPClient, "send_typing", HTTPClient.send_typing),
    ]
    extension_modules = [
        name for name in sys.modules if name == EXTENSION or name.startswith(f"{EXTENSION}.")
    ]
    for name in extension_modules:
        del sys.modules[name]  # imported again under the patches, as discord.py does on reload
    apply_monkey_patches()
    try:
        yield
    finally:
        for owner, attribute, original in saved:
            setattr(owner, attribute, original)


class PydisBot(BotBase):
    """python-discord/bot's `Bot`, as far as extensions go: BotBase's services, then every
    extension of its package loaded by pydis_core's loader."""

    async def setup_hook(self) -> None:
        """As python-discord/bot's: BotBase's own setup, then `load_extensions(exts)`, which
        returns at once and loads in a task once the guild is available."""
        await super().setup_hook()
        await self.load_extensions(guild_sync.exts)


class TreeSyncs:
    """Wraps `bot.tree.sync`, which pydis_core's loader calls (global, then the guild's commands)
    once its extension-loading task is done, and which the cog calls itself when Discord lacks
    its slash commands: records each call and passes it on to the loopback Discord. Recording
    shows the loader went all the way through."""

    def __init__(self, sync: Any, guild_id: int) -> None:
        self.sync = sync
        self.guild_id = guild_id
        self.guilds: list[int | None] = []
        self.done = asyncio.Event()
        """Set once both the global and the guild's commands were synced."""

    async def __call__(self, *, guild: discord.abc.Snowflake | None = None) -> list[Any]:
        self.guilds.append(None if guild is None else guild.id)
        synced = await self.sync(guild=guild)
        if {None, self.guild_id} <= set(self.guilds):
            self.done.set()
        return synced


def pydis_intents() -> discord.Intents:
    """python-discord/bot's intents: everything but presences and a few DM and guild extras."""
    intents = discord.Intents.all()
    intents.presences = False
    intents.dm_typing = False
    intents.dm_reactions = False
    intents.invites = False
    intents.webhooks = False
    intents.integrations = False
    return intents


def replies_to(h: Harness, command: StoredMessage) -> list[StoredMessage]:
    return [
        message
        for message in h.discord.channel_messages(h.guild.commands_channel_id)
        if str((message.message_reference or {}).get("message_id")) == str(command.id)
    ]


def sync_copies(bot: commands.Bot) -> dict[str, int]:
    """How many SyncCog instances each of the cog's events would reach (one per running copy)."""
    events = ("on_ready", "on_connect", "on_member_update", "on_guild_role_create")
    return {
        event: sum(
            type(getattr(listener, "__self__", None)).__name__ == "SyncCog"
            for listener in bot.extra_events.get(event, [])
        )
        for event in events
    }


async def drift_on_site(h: Harness, user_ids: list[int]) -> None:
    """Another writer changed these users on the site: a user sync has them to write back."""
    await h.client.bulk_patch_users(
        [{"id": user_id, "display_name": f"drifted {user_id}"} for user_id in user_ids]
    )


async def until_site_shows(h: Harness, user_id: int, display_name: str) -> None:
    """Poll the one user (not the whole 20,000-user site), within the harness's bound."""
    deadline = time.monotonic() + WAIT_S
    while (await h.site_user(user_id)).display_name != display_name:
        if time.monotonic() > deadline:
            raise AssertionError(f"user {user_id} never showed {display_name!r} on the site")
        await asyncio.sleep(0.05)


def unnicked_members(h: Harness, n: int) -> list[int]:
    """Ordinary members with no nickname: changing them touches nothing the tests rely on."""
    protected = h.guild.protected_ids()
    return [
        m.id
        for m in h.guild.state.members.values()
        if m.nick is None and m.id not in protected and m.id != h.guild.moderator_id
    ][:n]


async def test_pydis_botbase_loads_starts_and_reloads_the_extension(
    tmp_path, monkeypatch, pydis_process
):
    stale = PYDIS_MEMBERS // PYDIS_STALE_EVERY
    prepare = stale_site(every=PYDIS_STALE_EVERY)
    async with sandbox_world(tmp_path, members=PYDIS_MEMBERS, prepare=prepare) as world:
        # A host that knows nothing of `bot.sync_settings`: the extension reads the environment
        # (and a `.env` in the working directory, which tmp_path has not).
        for name, value in world.environ.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)
        moderators = [discord.Object(world.guild.role_id(MODERATORS))]
        async with aiohttp.ClientSession() as session:
            bot = PydisBot(
                guild_id=world.guild.id,
                http_session=session,
                allowed_roles=moderators,
                command_prefix=commands.when_mentioned_or("!"),
                case_insensitive=True,
                max_messages=10_000,
                allowed_mentions=discord.AllowedMentions(everyone=False, roles=moderators),
                intents=pydis_intents(),
                guild_ready_timeout=0.2,  # as running_bot: the one guild comes at once
            )
            tree_syncs = TreeSyncs(bot.tree.sync, world.guild.id)
            bot.tree.sync = tree_syncs  # type: ignore[method-assign]
            async with hosted(world, bot) as run:
                await pydis_startup(run, tree_syncs, stale)
                await command_writes_once(run.harness)
                await reload_leaves_one_copy(run)


async def pydis_startup(run: HostRun, tree_syncs: TreeSyncs, stale: int) -> None:
    """pydis_core's loader found exactly the one extension and loaded it after the guild was
    available; the cog started from there and its start-up sync made the site match."""
    h, bot = run.harness, run.harness.bot
    await run.started()
    assert isinstance(bot, BotBase)
    assert bot.all_extensions == frozenset({EXTENSION})  # no private module, no NoEntryPointError
    assert set(bot.extensions) == {EXTENSION}
    assert [type(cog).__name__ for cog in bot.cogs.values()] == ["SyncCog"]
    # A hybrid group (prefix and slash): pydis_core's patched `commands.group` does not build
    # it, and the root aliases its patch adds are not used by the cog.
    assert isinstance(bot.get_command("sync"), commands.HybridGroup)
    await asyncio.wait_for(tree_syncs.done.wait(), WAIT_S)
    await h.slash_commands_registered(WAIT_S)
    # The loader's two syncs; the cog syncs the guild's commands again only if it read them
    # before the loader's sync had written them (it reads once its member list is loaded).
    assert tree_syncs.guilds.count(None) == 1 and h.guild.id in tree_syncs.guilds
    assert [c.name for c in h.discord.registered_commands(h.guild.id)] == ["sync"]

    roles = await h.wait_for_summary("Role sync")
    users = await h.wait_for_summary("User sync")
    assert roles.startswith("✅") and "start-up" in roles, roles
    assert users.startswith("✅") and "start-up" in users, users
    assert f"Wrote: 0 created, {count(stale)} updated, 0 marked left" in users, users
    assert h.site.stats.bulk_patch_items == stale
    assert await h.mismatches() == []


def final_user_syncs(h: Harness) -> list[str]:
    return [text for text in h.log_texts() if is_final_summary(text, "User sync")]


async def command_writes_once(h: Harness) -> None:
    """A moderator's `!sync users` is answered once, ends in one summary and writes back, once,
    what drifted on the site (a second running copy would answer, or write, a second time)."""
    drifted = unnicked_members(h, 5)
    await drift_on_site(h, drifted)
    patched, finals = h.site.stats.bulk_patch_items, len(final_user_syncs(h))
    command = h.say("!sync users")
    started = await h.reply_to(command)
    assert started.content.startswith("Started; follow it here: "), started.content
    done = await h.wait_for_summary("User sync", nth=finals + 1)
    assert done.startswith("✅") and "command" in done, done
    assert f"Wrote: 0 created, {len(drifted)} updated, 0 marked left" in done, done
    assert h.site.stats.bulk_patch_items - patched == len(drifted)
    assert replies_to(h, command) == [started], "answered more than once"
    assert len(final_user_syncs(h)) == finals + 1
    for user_id in drifted:
        assert (await h.site_user(user_id)).display_name != f"drifted {user_id}"


async def reload_leaves_one_copy(run: HostRun) -> None:
    """`reload_extension` in the middle of a moderator's run: the old copy's run is cancelled
    and reported, its lease freed, its tasks done and its engine closed; the new copy starts
    from cog_load (READY is long past) and is the only one hearing events and commands."""
    h, bot = run.harness, run.harness.bot
    old = h.cog
    assert old.runs is not None and old.book.journal is not None
    await drift_on_site(h, unnicked_members(h, 5))
    # The run's first write waits at the site's gate: the reload lands while it is running.
    h.site.hold.arm(BULK_PATCH, after_items=h.site.stats.route(BULK_PATCH).items)
    command = h.say("!sync users")
    await h.reply_to(command)
    await eventually(lambda: h.site.hold.waiting >= 1, WAIT_S)
    [active] = old.runs.active.values()
    assert await old.book.journal.holder(LOCK_OF_KIND["users"]) is not None
    old_tasks, old_engine = set(old._tasks), old.engine
    assert old_engine is not None

    reloading = asyncio.create_task(bot.reload_extension(EXTENSION))
    await eventually(lambda: active.task.cancelling() > 0 or active.task.done(), WAIT_S)
    h.site.hold.release()  # the cancelled run waits for its requests in flight, then ends
    await asyncio.wait_for(reloading, WAIT_S)
    stopped = await h.wait_for_summary("User sync", nth=3)
    assert stopped.startswith("⏹️") and "cancelled in" in stopped, stopped

    new = await run.started()
    assert new is not old
    assert set(bot.extensions) == {EXTENSION}
    assert [type(cog).__name__ for cog in bot.cogs.values()] == ["SyncCog"]
    assert bot.get_command("sync").cog is new  # type: ignore[union-attr]
    copies = sync_copies(bot)
    assert copies == dict.fromkeys(copies, 1), copies
    assert all(task.done() for task in old_tasks) and not old._tasks
    assert old_engine._dispatcher is None or old_engine._dispatcher.done()
    # The new copy's start-up sync took the same leases at once (a lease the old copy kept
    # would have held it back until it expired, then refused it), and none is held now.
    roles = await h.wait_for_summary("Role sync", nth=2)
    users = await h.wait_for_summary("User sync", nth=4)
    assert roles.startswith("✅") and "start-up" in roles, roles
    assert users.startswith("✅") and "start-up" in users, users
    assert new.book.journal is not None
    for lock in set(LOCK_OF_KIND.values()):
        assert await new.book.journal.holder(lock) is None, f"lease {lock!r} still held"

    # A member change after the reload is written once: by the one engine listening.
    member = unnicked_members(h, 1)[0]
    writes, patched = h.site_writes(), h.site.stats.bulk_patch_items
    h.discord.update_member(h.guild.id, member, nick="Renamed after the reload")
    await until_site_shows(h, member, "Renamed after the reload")
    assert new.engine is not None
    await new.engine.flush()  # nothing else queued: a second copy's write would show below
    assert (h.site_writes() - writes, h.site.stats.bulk_patch_items - patched) == (1, 1)

    await command_writes_once(h)
    assert await h.mismatches() == []


async def test_plain_bot_loading_the_extension_after_ready(tmp_path):
    """A plain discord.py bot that loads the extension from its own on_ready: the cog's
    on_ready listener never runs for that READY, so cog_load must start it."""
    stale = PLAIN_MEMBERS // PLAIN_STALE_EVERY
    prepare = stale_site(every=PLAIN_STALE_EVERY)
    async with sandbox_world(tmp_path, members=PLAIN_MEMBERS, prepare=prepare) as world:
        intents = discord.Intents.default()
        intents.members = True
        intents.message_content = True
        loaded_when_ready: list[bool] = []

        class LateLoader(commands.Bot):
            async def on_ready(self) -> None:
                if EXTENSION not in self.extensions:
                    loaded_when_ready.append(self.is_ready())
                    await self.load_extension(EXTENSION)

        bot = LateLoader(
            command_prefix="!",
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=0.2,
        )
        bot.sync_settings = world.settings()  # type: ignore[attr-defined]
        async with hosted(world, bot) as run:
            h = run.harness
            await run.started()
            assert loaded_when_ready == [True]
            users = await h.wait_for_summary("User sync")
            assert users.startswith("✅") and "start-up" in users, users
            assert f"Wrote: 0 created, {count(stale)} updated, 0 marked left" in users, users
            assert await h.mismatches() == []
            await command_writes_once(h)
