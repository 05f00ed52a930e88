"""A sandbox site on a loopback port, a fast-retrying client and an engine wired to both."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.sandbox.site import FaultConfig, SandboxSite
from guild_sync.engine import InMemoryGuild, ProgressEvent, SyncEngine
from guild_sync.site.client import SiteClient
from guild_sync.site.records import Role, User
from guild_sync.site.retry import RetryPolicy
from tests.site_bounds import broken_bounds

BULK_PATCH = "PATCH /api/bot/users/bulk_patch"
CREATE = "POST /api/bot/users"

TOKEN = "engine-tests-token"


def fast_retry(attempts: int = 6) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, base_delay=0.01, max_delay=0.05, rng=random.Random(1))


@dataclass
class Rig:
    site: SandboxSite
    client: SiteClient
    guild: InMemoryGuild
    engine: SyncEngine
    chunk_size: int
    max_in_flight: int
    """As configured: the bounds the engine promised the site."""
    events: list[ProgressEvent] = field(default_factory=list)

    def seed(self, roles: Iterable[Role] = (), users: Iterable[User] = ()) -> None:
        self.site.store.seed(roles, users)

    def site_users(self) -> dict[int, User]:
        return {user.id: user for user in self.site.store.all_users()}

    def of_type(self, kind: type) -> list:
        return [event for event in self.events if isinstance(event, kind)]

    def broken_bounds(self) -> list[str]:
        """The configured bounds, checked from what the site itself counted (its stats), never
        from the engine's counters: a user write above the chunk size, an empty request, more
        user writes served at once than `max_in_flight`. Empty when every bound held."""
        return broken_bounds(
            self.site.stats.snapshot(),
            chunk_size=self.chunk_size,
            max_in_flight=self.max_in_flight,
        )

    def mismatches(self) -> list[str]:
        """Differences between the site and the guild: the property every sync must restore."""
        problems = []
        if sorted(self.site.store.all_roles(), key=lambda r: r.id) != sorted(
            self.guild.roles(), key=lambda r: r.id
        ):
            problems.append("roles differ")
        site = self.site_users()
        for user_id in self.guild.member_ids():
            if site.get(user_id) != self.guild.member(user_id):
                problems.append(f"member {user_id}: site {site.get(user_id)}")
        for user_id, user in site.items():
            if self.guild.member(user_id) is None and user.in_guild:
                problems.append(f"user {user_id} left but the site says in_guild")
        return problems


async def make_rig(
    *,
    chunk_size: int = 10,
    max_in_flight: int = 3,
    page_size: int = 25,
    linger: float = 0.05,
    faults: FaultConfig | None = None,
    attempts: int = 6,
    guild: InMemoryGuild | None = None,
    **engine_options: Any,
) -> tuple[Rig, SandboxSite]:
    site = SandboxSite(token=TOKEN, faults=faults)
    await site.start()
    client = SiteClient(site.url, TOKEN, timeout=5.0, retry=fast_retry(attempts))
    guild = InMemoryGuild() if guild is None else guild
    engine = SyncEngine(
        client,
        guild,
        chunk_size=chunk_size,
        max_in_flight=max_in_flight,
        page_size=page_size,
        linger=linger,
        **engine_options,
    )
    rig = Rig(site, client, guild, engine, chunk_size, max_in_flight)
    engine.subscribe(rig.events.append)
    return rig, site


async def close_rig(rig: Rig) -> None:
    await rig.engine.close()
    await rig.client.close()
    await rig.site.stop()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    made, _ = await make_rig()
    yield made
    await close_rig(made)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """A bounded wait on observed state (the site's counters and gate signal no event)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def person(user_id: int, name: str = "", roles: Iterable[int] = (), in_guild: bool = True) -> User:
    return User(user_id, name or f"user{user_id}", "", 1, frozenset(roles), in_guild)
