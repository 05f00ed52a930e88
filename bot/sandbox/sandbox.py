"""What a scenario gets: the loopback Discord, the guild, the site, the bot process."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from bot.sandbox.bot_process import BotProcess
from bot.sandbox.discord import LoopbackDiscord
from bot.sandbox.log_printer import LogPrinter
from bot.sandbox.site.process import SiteProcess, start_site_process
from bot.sandbox.world import SandboxGuild, mismatches
from guild_sync.exts.sync._reporter import is_final_summary
from guild_sync.site.client import SiteClient

LISTED_IDS = re.compile(r"^User ids: ([\d, ]+)", re.MULTILINE)
RETRY_LINE = "retrying in"
"""What the site client logs before each retry (guild_sync.site.client)."""
BULK_PATCH = "PATCH /api/bot/users/bulk_patch"
"""The route of the user writes, as the site's stats and hold gate name it."""


def expect(condition: bool, failure: str) -> None:
    """A scenario's check: the runner reports `failure` and the scenario fails."""
    if not condition:
        raise RuntimeError(failure)


@dataclass
class Sandbox:
    discord: LoopbackDiscord
    guild: SandboxGuild
    client: SiteClient
    bot: BotProcess
    members: int
    out: TextIO = sys.stdout
    started: float = field(default_factory=time.monotonic)
    seed: int = 0
    """`--seed`: scenarios that draw faults or events at random use it."""
    site: SiteProcess | None = None
    """The sandbox site's process (None against an operator's site)."""
    site_db: Path | None = None
    isolated: set[int] = field(default_factory=set)
    """Users whose records the site's contract cannot store: left out of the final check, and
    the bot must list each of them in the log channel."""
    facts: dict[str, Any] = field(default_factory=dict)
    """What a scenario measured, added to the summary line."""
    printer: LogPrinter | None = None
    """The log channel's echo in the terminal, brought up to date before each narrator line."""

    def say(self, text: str) -> None:
        """A narrator's line in the terminal, after whatever the log channel showed before it."""
        if self.printer is not None:
            self.printer.show_new()
        self.out.write(f"» {text}\n")
        self.out.flush()

    def log_texts(self) -> list[str]:
        return [m.content for m in self.discord.channel_messages(self.guild.log_channel_id)]

    def finished_runs(self, title: str) -> list[str]:
        """Final texts of the runs with this title (live messages that reached their end)."""
        return [text for text in self.log_texts() if is_final_summary(text, title)]

    async def wait_for_summary(
        self, title: str, *, nth: int | None = None, within: float = 120.0
    ) -> str:
        """Wait for the next (or the `nth`) run with this title to finish; its final text."""
        wanted = len(self.finished_runs(title)) + 1 if nth is None else nth
        deadline = time.monotonic() + within
        while len(self.finished_runs(title)) < wanted:
            if not self.bot.alive:
                raise RuntimeError(f"the bot process exited while waiting for {title!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no finished {title!r} run within {within:.0f} s")
            await asyncio.sleep(0.2)
        return self.finished_runs(title)[wanted - 1]

    def error_texts(self) -> list[str]:
        """The log channel's error messages (their first version starts with ⚠️)."""
        messages = self.discord.channel_messages(self.guild.log_channel_id)
        return [m.content for m in messages if m.versions[0].content.startswith("⚠️")]

    def listed_user_ids(self) -> set[int]:
        """Every user id the log channel's error messages list (ids past the 25 shown are not)."""
        return {
            int(user_id)
            for text in self.error_texts()
            for line in LISTED_IDS.findall(text)
            for user_id in line.split(", ")
            if user_id.strip().isdigit()
        }

    def bot_log_count(self, text: str) -> int:
        """How often the bot's log (every start) contains `text`."""
        if not self.bot.log_path.exists():
            return 0
        return self.bot.log_path.read_text(errors="replace").count(text)

    async def restart_site(self, down_for: float) -> None:
        """Kill the sandbox site (SIGKILL, as a crash would) and start it again `down_for`
        seconds later on the same port with the same database and cost model, as a supervisor
        would."""
        if self.site is None or self.site_db is None:
            raise RuntimeError("only the sandbox site can be restarted")
        port = urlsplit(self.site.url).port or 0
        cost = self.site.cost
        self.site.kill()
        self.site.stop()  # closes its pipe; the process is already gone
        await asyncio.sleep(down_for)
        self.site = await asyncio.to_thread(
            start_site_process, db=str(self.site_db), port=port, cost=cost
        )

    async def wait_until_site_matches(self, within: float | None = None) -> None:
        """For event-driven changes that have no run message: poll until the site agrees."""
        deadline = time.monotonic() + (within or self.run_timeout())
        while await mismatches(self.client, self.guild, self.isolated):
            if time.monotonic() > deadline:
                return  # the runner's final check reports what still differs
            await asyncio.sleep(1.0)

    async def site_stats(self) -> dict[str, Any]:
        """The sandbox site's own counters (requests, bulk_patch items, peak memory)."""
        return await self.client.request("GET", "_sandbox/stats")

    async def set_site_faults(self, **changes: Any) -> None:
        """Break or heal the sandbox site mid-scenario (see bot.sandbox.site.faults)."""
        await self.client.request("POST", "_sandbox/faults", json=changes)

    async def hold_site_after(self, route: str, items: int) -> None:
        """Shut the site's gate on `route` once it has received `items` items (hold.py)."""
        await self.client.request(
            "POST", "_sandbox/hold", json={"route": route, "after_items": items}
        )

    async def wait_until_held(self, within: float | None = None) -> dict[str, Any]:
        """Wait until a request is held at the gate; the gate's state (`items_before`: what the
        route had received when it shut). Once shut, it stays shut: the wait cannot miss it."""
        return await self._poll_site(
            "_sandbox/hold",
            lambda hold: hold["tripped"] and hold["waiting"] > 0,
            within or self.run_timeout(),
        )

    async def release_site(self) -> None:
        """Open the gate and wait until every held request has been served."""
        await self.client.request("DELETE", "_sandbox/hold")
        await self._poll_site("_sandbox/hold", lambda hold: hold["waiting"] == 0, 30.0)

    async def wait_for_site(
        self, condition: Callable[[dict[str, Any]], bool], within: float
    ) -> dict[str, Any]:
        """Wait until the site's stats satisfy `condition`; those stats."""
        return await self._poll_site("_sandbox/stats", condition, within)

    async def _poll_site(
        self, path: str, condition: Callable[[dict[str, Any]], bool], within: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while not condition(state := await self.client.request("GET", path)):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the site did not reach the expected state within {within:.0f} s"
                )
            await asyncio.sleep(0.05)
        return state

    async def wait_for_log(self, predicate: Callable[[str], bool], within: float = 60.0) -> str:
        """The first log-channel message (its current text) that satisfies `predicate`."""
        deadline = time.monotonic() + within
        while True:
            found = next((t for t in self.log_texts() if predicate(t)), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"no such log-channel message within {within:.0f} s")
            await asyncio.sleep(0.2)

    async def wait_for_bot_log(self, text: str, *, start: int, within: float = 60.0) -> None:
        """Wait until the bot's own log (its process `start`, 1-based) contains `text`."""
        deadline = time.monotonic() + within
        while text not in self.bot.log_of_start(start):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bot did not log {text!r} within {within:.0f} s")
            await asyncio.sleep(0.2)

    def command(self, content: str) -> None:
        """The moderator types a command in the commands channel."""
        self.say(f"A moderator types: {content}")
        self.discord.post_message(self.guild.commands_channel_id, self.guild.moderator_id, content)

    def run_timeout(self) -> float:
        """Generous for a slow machine: a minute plus 2 ms per member."""
        return 60.0 + self.members / 500
