"""Edges of a run's life in the cog: what Discord refuses must not strand a run's lease."""

import asyncio
from types import SimpleNamespace

import discord
import pytest

from guild_sync.exts.sync._runs import COMMAND
from tests.e2e.harness import NO_STARTUP, running_bot, stale_site

pytestmark = pytest.mark.timeout(90)


class RefusedReplies:
    """A command context whose replies Discord refuses, as it does when the moderator deleted
    the command message ("Unknown message" for the reply's reference)."""

    interaction = None  # a prefix command's context, as discord.py's has

    def __init__(self) -> None:
        self.refused = 0

    async def reply(self, *_: object, **__: object) -> None:
        self.refused += 1
        response = SimpleNamespace(status=400, reason="Bad Request")
        raise discord.HTTPException(response, {"code": 50035, "message": "Unknown message"})


async def test_a_refused_start_reply_neither_stops_the_run_nor_keeps_its_lock(tmp_path):
    async with running_bot(
        tmp_path, members=40, seed_site=False, prepare=stale_site(every=4), settings=NO_STARTUP
    ) as h:
        runs = h.cog.runs
        moderator = h.cog.guild_state.guild.get_member(h.guild.moderator_id)
        ctx = RefusedReplies()
        first = await asyncio.wait_for(
            runs.run("users", trigger=COMMAND, actor=moderator, ctx=ctx), 30
        )
        assert ctx.refused == 1
        assert first is not None and first.status == "finished" and first.updated == 10
        assert await h.mismatches() == []
        again = await asyncio.wait_for(runs.run("users", trigger=COMMAND, actor=moderator), 30)
        assert again is not None and again.status == "finished", "the lock was kept"
        assert all(not text.startswith("🔄") for text in h.log_texts()), h.log_texts()
