"""Sending one chunk of writes and settling its ops from the site's answers.

A chunk is at most `chunk_size` ops and never empty. Its creates go out as one bulk POST, then
its patches as one bulk_patch. The site's answers are turned into per-item outcomes:
- bulk_patch 404 names the first unknown id and writes nothing: the chunk's members are bulk
  created (the site skips ids it has) and the patch is sent again; the named user counts as
  created, the others as updated (the site does not say which of them it lacked);
- 400 with a list aligned with the input names the bad items: they are reported, the good
  ones are sent again; any other 400 is bisected until the bad items are isolated;
- anything still failing after the client's retries is reported failed; the run goes on.

How many chunks are in flight at once is the AdaptiveWindow's (limiter.py): it grows only while
more in flight raises the site's throughput, and halves on retries and failures.
"""

from __future__ import annotations

import contextvars
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from guild_sync.engine.guild import GuildState
from guild_sync.engine.limiter import AdaptiveWindow
from guild_sync.engine.progress import BadRecords, ChunkDone, ChunkFailed, ProgressHub
from guild_sync.engine.queue import Op
from guild_sync.engine.role_writes import RoleWrites
from guild_sync.site.client import SiteClient
from guild_sync.site.errors import SiteAPIError
from guild_sync.site.records import User

__all__ = ["AdaptiveWindow", "ChunkContext", "ChunkSender", "current_chunk"]

USER_NOT_FOUND = re.compile(r"User with id (\d+) not found")


@dataclass
class ChunkContext:
    """Set in the context of the task sending a chunk, so the client's retry hook finds it."""

    run_ids: tuple[str, ...]
    """Every run with an op in the chunk: a retry of its requests concerns each of them."""
    retries: int = 0
    request_failures: Counter[str] = field(default_factory=Counter)
    """Ops per run that failed because a request failed (not records the site rejected)."""


current_chunk: contextvars.ContextVar[ChunkContext | None] = contextvars.ContextVar(
    "current_chunk", default=None
)


class ChunkSender:
    def __init__(
        self,
        client: SiteClient,
        guild: GuildState,
        hub: ProgressHub,
        window: AdaptiveWindow,
        role_writes: RoleWrites,
    ) -> None:
        self.client = client
        self.guild = guild
        self.hub = hub
        self.window = window
        self.role_writes = role_writes

    async def send(self, ops: list[Op]) -> None:
        """Send one chunk and settle every op into its run; never raises SiteAPIError."""
        await self.role_writes.wait_for(_roles_named(ops))
        items_by_run = Counter(op.owner.run_id for op in ops)
        context = ChunkContext(tuple(items_by_run))
        current_chunk.set(context)
        stamp = self.window.sent()
        await _Chunk(self, context).send(ops)
        healthy = not context.request_failures and context.retries == 0
        latency = self.window.record(stamp, len(ops), healthy=healthy)
        for run_id, items in items_by_run.items():
            ok = context.request_failures[run_id] == 0
            self.hub.publish(ChunkDone(run_id, ok, items, latency, self.window.in_flight))


class _Chunk:
    """The requests of one chunk, with what they learnt (users to create instead, failures)."""

    def __init__(self, sender: ChunkSender, context: ChunkContext) -> None:
        self.client = sender.client
        self.guild = sender.guild
        self.hub = sender.hub
        self.context = context
        self.late_creates: list[Op] = []

    async def send(self, ops: list[Op]) -> None:
        for op in ops:
            if op.create is None and op.patch is None:
                op.settle("skipped")
        creates = [op for op in ops if op.create is not None]
        landed = await self._send_isolating(creates, self._post) if creates else []
        for op in landed:
            if op.patch is None:
                op.settle(op.outcome)
        upserted = {op.user_id for op in landed if op.patch is not None}
        patches = [
            op
            for op in ops
            if op.patch is not None and (op.create is None or op.user_id in upserted)
        ]
        for op in await self._send_isolating(patches, self._patch) if patches else []:
            op.settle(op.outcome)
        if self.late_creates:
            for op in await self._send_isolating(self.late_creates, self._post):
                op.settle(op.outcome)

    async def _post(self, ops: list[Op]) -> None:
        await self.client.create_users(op.create for op in ops if op.create is not None)

    async def _patch(self, ops: list[Op]) -> None:
        """bulk_patch `ops`. The site answers 404 for the first id it lacks and writes nothing,
        so after a site restore a chunk would cost one request per missing user: instead the
        first 404 bulk creates every member of the chunk (the site skips ids it has) and the
        patch is sent again. A constant number of requests per chunk, however many are missing.
        """
        created_chunk = False
        while ops:
            try:
                await self.client.bulk_patch_users([op.patch for op in ops])
                return
            except SiteAPIError as error:
                missing = _missing_user(error)
                index = next((i for i, op in enumerate(ops) if op.user_id == missing), None)
                if index is None:
                    raise
            op = ops[index]
            member = self.guild.member(op.user_id)
            if member is None:
                ops.pop(index)
                op.settle("skipped")  # neither on the site nor a member: nothing to write
            elif not created_chunk:
                created_chunk = True
                op.outcome = "created"
                ops[:] = await self._create_members_of(ops)
            else:
                # Created with the chunk, yet gone again: the same op, so it settles once,
                # as created, or failed if this create fails too.
                ops.pop(index)
                op.outcome, op.create, op.patch = "created", member, None
                self.late_creates.append(op)

    async def _create_members_of(self, ops: list[Op]) -> list[Op]:
        """Bulk create the members among `ops`, each as its patch would leave it (existing ids
        are skipped, not updated); returns the ops still to patch (bad records are settled)."""
        creatable = []
        for op in ops:
            member = self.guild.member(op.user_id)
            if member is not None and op.patch is not None:
                op.create = User.from_json(member.to_json() | op.patch)
                creatable.append(op)
        await self._send_isolating(creatable, self._post)
        for op in creatable:
            op.create = None
        return [op for op in ops if not op.settled]

    async def _send_isolating(
        self, ops: list[Op], send: Callable[[list[Op]], Awaitable[None]]
    ) -> list[Op]:
        """Send `ops`; on a 400 isolate the bad items and resend the rest. Returns what landed."""
        if not ops:
            return []
        try:
            await send(ops)
        except SiteAPIError as error:
            return await self._isolate(ops, error, send)
        return ops

    async def _isolate(
        self, ops: list[Op], error: SiteAPIError, send: Callable[[list[Op]], Awaitable[None]]
    ) -> list[Op]:
        if error.status != 400:
            for run_id, failed in _by_run(ops).items():
                self.context.request_failures[run_id] += len(failed)
                _settle_failed(failed)
                self.hub.publish(ChunkFailed(run_id, _ids(failed), error.summary()))
            return []
        body = error.body
        if _aligned(body, ops) and any(body):
            for op, item in zip(ops, body, strict=True):
                if item:
                    self._bad([op], json.dumps(item, sort_keys=True))
            good = [op for op, item in zip(ops, body, strict=True) if not item]
            return await self._send_isolating(good, send)
        if len(ops) == 1:
            self._bad(ops, json.dumps(body, sort_keys=True))
            return []
        middle = len(ops) // 2
        first = await self._send_isolating(ops[:middle], send)
        return first + await self._send_isolating(ops[middle:], send)

    def _bad(self, ops: list[Op], message: str) -> None:
        """Records the site refused for their content: failed items, but no failed request."""
        for run_id, bad in _by_run(ops).items():
            _settle_failed(bad)
            self.hub.publish(BadRecords(run_id, _ids(bad), 400, message))


def _roles_named(ops: list[Op]) -> set[int]:
    named: set[int] = set()
    for op in ops:
        if op.create is not None:
            named |= op.create.roles
        if op.patch is not None:
            named.update(op.patch.get("roles", ()))
    return named


def _by_run(ops: list[Op]) -> dict[str, list[Op]]:
    """Ops grouped by the run that owns them: each run hears only of its own outcomes."""
    grouped: dict[str, list[Op]] = {}
    for op in ops:
        grouped.setdefault(op.owner.run_id, []).append(op)
    return grouped


def _ids(ops: list[Op]) -> tuple[int, ...]:
    return tuple(op.user_id for op in ops)


def _settle_failed(ops: list[Op]) -> None:
    for op in ops:
        op.settle("failed")


def _aligned(body: Any, ops: list[Op]) -> bool:
    return (
        isinstance(body, list)
        and len(body) == len(ops)
        and all(isinstance(item, dict) for item in body)
    )


def _missing_user(error: SiteAPIError) -> int | None:
    if error.status != 404 or not isinstance(error.body, dict):
        return None
    match = USER_NOT_FOUND.search(str(error.body.get("detail", "")))
    return int(match.group(1)) if match else None
