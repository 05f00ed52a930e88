"""The write queue shared by full syncs and gateway events.

Keyed by user id and coalescing: a user queued twice is sent once, with the union of the
fields. The queue stores only *which* fields of *whom* are dirty; the values are read from the
guild when the chunk is built, so a member update that lands during a long sync is sent with
its newest value and never overwritten by an older one. An id whose earlier write is still in
flight waits (deferred) until that write is answered, so two writes for one user never race.

Full syncs await room in the queue (backpressure keeps memory bounded); events never block the
gateway: `put` is synchronous and a short linger batches a burst of events into full chunks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from itertools import islice
from typing import Any

from guild_sync.engine.diff import ALL_FIELDS, Kind
from guild_sync.engine.guild import GuildState
from guild_sync.engine.run import Run
from guild_sync.site.records import User


@dataclass(slots=True)
class Pending:
    kind: Kind
    fields: frozenset[str]
    owner: Run
    left_roles: frozenset[int] | None = None
    """Roles to send if the user is no longer a member (role stripping); None: leave them."""
    wanted_by_events: bool = False
    """An event also asked for this write, so abandoning the owner run must not drop it."""


@dataclass(slots=True)
class Op:
    """One user's write as built from the guild's current state."""

    user_id: int
    owner: Run
    outcome: str
    """What a confirmed write counts as: created, updated or left (skipped if nothing to send)."""
    create: User | None = None
    patch: dict[str, Any] | None = None
    settled: bool = False

    def settle(self, outcome: str) -> None:
        self.settled = True
        self.owner.settle(outcome)


def _merge_kind(old: Kind, new: Kind) -> Kind:
    """Two writes of different kinds become an upsert. Never a create: the site skips a create
    for an id it already has (someone else created it since it was queued), so a create that
    absorbed a patch could drop the patch's newer fields."""
    return old if old is new else Kind.UPSERT


def build_op(user_id: int, pending: Pending, guild: GuildState, stripping: Collection[int]) -> Op:
    member = guild.member(user_id)
    if member is None:
        if pending.kind is Kind.CREATE:
            return Op(user_id, pending.owner, "skipped")  # joined and left before we sent it
        patch: dict[str, Any] = {"id": user_id, "in_guild": False}
        if pending.left_roles is not None:
            patch["roles"] = sorted(pending.left_roles)
        return Op(user_id, pending.owner, "left", patch=patch)
    if stripping and not member.roles.isdisjoint(stripping):
        member = User(
            member.id,
            member.name,
            member.display_name,
            member.discriminator,
            member.roles.difference(stripping),
        )
    if pending.kind is Kind.CREATE:
        return Op(user_id, pending.owner, "created", create=member)
    fields = ALL_FIELDS if pending.kind is Kind.UPSERT else pending.fields
    patch = {"id": user_id, **member.fields_json(fields)}
    create = member if pending.kind is Kind.UPSERT else None
    return Op(user_id, pending.owner, "updated", create=create, patch=patch)


class WriteQueue:
    def __init__(
        self,
        chunk_size: int,
        limit: int,
        linger: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.chunk_size = chunk_size
        self.limit = limit
        self.linger = linger
        self.clock = clock
        self.urgent = 0
        """Runs waiting for their last items: send partial chunks without lingering."""
        self._pending: dict[int, Pending] = {}
        self._deferred: dict[int, Pending] = {}
        self._in_flight: set[int] = set()
        self._oldest: float | None = None
        self._work = asyncio.Event()
        self._room = asyncio.Event()

    def __len__(self) -> int:
        """Items queued, waiting on an earlier write, or in flight."""
        return len(self._pending) + len(self._deferred) + len(self._in_flight)

    def put(
        self,
        user_id: int,
        kind: Kind,
        fields: frozenset[str],
        owner: Run,
        left_roles: frozenset[int] | None = None,
    ) -> None:
        """Queue a write without waiting (the event path); coalesces with a queued one."""
        target = self._deferred if user_id in self._in_flight else self._pending
        queued = target.get(user_id)
        if queued is None:
            owner.adopt()
            target[user_id] = Pending(kind, fields, owner, left_roles, owner.is_events)
            if target is self._pending and self._oldest is None:
                self._oldest = self.clock()
        else:
            queued.kind = _merge_kind(queued.kind, kind)
            queued.fields |= fields
            if left_roles is not None:
                queued.left_roles = left_roles
            if owner.is_events:
                queued.wanted_by_events = True
            elif queued.owner.is_events:
                queued.owner.release()
                owner.adopt()
                queued.owner = owner
        self._work.set()

    async def put_waiting(
        self,
        user_id: int,
        kind: Kind,
        fields: frozenset[str],
        owner: Run,
        left_roles: frozenset[int] | None = None,
    ) -> None:
        """Queue a write for a full sync, first waiting while the queue is over its limit."""
        while len(self) >= self.limit:
            self._room.clear()
            await self._room.wait()
        self.put(user_id, kind, fields, owner, left_roles)

    def wake(self) -> None:
        """Make the sender look again (a run now wants its partial chunk sent)."""
        self._work.set()

    async def wait_ready(self) -> None:
        """Return once a chunk should be sent: a full chunk, an urgent run, or linger elapsed."""
        while True:
            if self._pending:
                assert self._oldest is not None
                waited = self.clock() - self._oldest
                if len(self._pending) >= self.chunk_size or self.urgent or waited >= self.linger:
                    return
                timeout: float | None = self.linger - waited
            else:
                timeout = None
            self._work.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._work.wait()
            except TimeoutError:
                pass

    def take(self, guild: GuildState, stripping: Collection[int]) -> list[Op]:
        """Pop up to one chunk of queued writes and build them from the guild's current state."""
        user_ids = list(islice(self._pending, self.chunk_size))
        ops = [build_op(uid, self._pending.pop(uid), guild, stripping) for uid in user_ids]
        self._in_flight.update(user_ids)
        self._oldest = self.clock() if self._pending else None
        return ops

    def done(self, user_ids: list[int]) -> None:
        """The writes of these ids were answered: deferred writes for them may go now."""
        self._in_flight.difference_update(user_ids)
        for user_id in user_ids:
            deferred = self._deferred.pop(user_id, None)
            if deferred is not None:
                self._pending[user_id] = deferred
                if self._oldest is None:
                    self._oldest = self.clock()
                self._work.set()
        self._room.set()

    def abandon(self, owner: Run, events: Run) -> None:
        """Drop the queued writes of a cancelled run, handing events' wishes to `events`."""
        for queue in (self._pending, self._deferred):
            for user_id, pending in list(queue.items()):
                if pending.owner is not owner:
                    continue
                owner.release()
                if pending.wanted_by_events:
                    events.adopt()
                    pending.owner = events
                else:
                    del queue[user_id]
        if not self._pending:
            self._oldest = None
        self._room.set()
