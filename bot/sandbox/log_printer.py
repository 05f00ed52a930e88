"""Print the log channel as moderators see it: each new message, then each edit in turn."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from bot.sandbox.discord import LoopbackDiscord

POLL_S = 0.2


class LogPrinter:
    def __init__(self, discord: LoopbackDiscord, channel_id: int, out: TextIO = sys.stdout) -> None:
        self.discord = discord
        self.channel_id = channel_id
        self.out = out
        self._shown: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="log-printer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        self.show_new()

    async def _follow(self) -> None:
        while True:
            self.show_new()
            await asyncio.sleep(POLL_S)

    def show_new(self) -> None:
        for message in self.discord.channel_messages(self.channel_id):
            shown = self._shown.get(message.id, 0)
            for number, version in enumerate(message.versions[shown:], start=shown):
                label = "new message" if number == 0 else f"edit {number}"
                self.out.write(f"┌─ #sync-log · {label} · {version.at:%H:%M:%S}\n")
                for line in version.content.splitlines() or [""]:
                    self.out.write(f"│ {line}\n")
            self._shown[message.id] = len(message.versions)
        self.out.flush()
