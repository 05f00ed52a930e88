"""Leavers verified before they are written: a user sync asks the guild's authority (Discord)
about a random sample of the users it would mark as left, and marks nobody as left when one of
them is still a member (the member cache is incomplete)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

import pytest

from guild_sync.engine import InMemoryGuild, LeaversWithheld, PlanUpdated, RunFinished
from guild_sync.engine.leavers import LEAVER_SAMPLE
from tests.engine.conftest import BULK_PATCH, Rig, close_rig, make_rig, person


class PartialCache(InMemoryGuild):
    """A member cache that lacks some members Discord still has (`on_discord`), and the check
    that asks Discord about each id, recording what it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.on_discord: set[int] = set()
        self.asked: list[list[int]] = []
        self.before_answer: Callable[[], None] | None = None
        self.failure: Exception | None = None

    async def still_members(self, user_ids: Sequence[int]) -> list[int]:
        self.asked.append(list(user_ids))
        if self.before_answer is not None:
            self.before_answer()
        if self.failure is not None:
            raise self.failure
        return [user_id for user_id in user_ids if user_id in self.on_discord]


@pytest.fixture
async def partial() -> AsyncIterator[tuple[Rig, PartialCache]]:
    guild = PartialCache()
    made, _ = await make_rig(guild=guild, rng=random.Random(7))
    yield made, guild
    await close_rig(made)


def cache(guild: PartialCache, members: Iterable[int], renamed: Iterable[int] = ()) -> None:
    renamed = set(renamed)
    for user_id in members:
        guild.add_member(person(user_id, "renamed" if user_id in renamed else ""))


async def sync(rig: Rig) -> RunFinished:
    """A user sync, once every progress event it published has reached `rig.events`."""
    report = await rig.engine.sync_users()
    await asyncio.wait_for(rig.engine.hub.idle(), 5)
    return report


def in_guild(rig: Rig) -> dict[int, bool]:
    """What the site's own store holds, not what the engine counted."""
    return {user_id: user.in_guild for user_id, user in rig.site_users().items()}


async def test_leavers_still_on_discord_are_not_marked_left_and_the_rest_is_written(partial):
    rig, guild = partial
    rig.seed([], [person(i) for i in range(1, 41)])
    cache(guild, range(1, 35), renamed=range(1, 11))
    guild.on_discord = set(range(35, 41))  # the cache lacks 6 members Discord still has
    report = await sync(rig)
    assert all(in_guild(rig).values()), "a member missing from the cache was marked left"
    assert [rig.site_users()[i].name for i in range(1, 11)] == ["renamed"] * 10
    assert (report.left, report.updated, report.leaves_withheld) == (0, 10, 6)
    assert report.status == "partial"
    [withheld] = rig.of_type(LeaversWithheld)
    assert (withheld.leaving, withheld.sampled) == (6, 6)
    assert withheld.still_members == tuple(range(35, 41))
    assert rig.mismatches() == [f"user {i} left but the site says in_guild" for i in range(35, 41)]
    assert rig.broken_bounds() == []


async def test_no_leave_is_sent_before_the_sample_is_checked(partial):
    rig, guild = partial
    # 60 users over three pages of 25, leavers on every page, chunks of 10 with a short linger:
    # streamed, the first page's leaves would be written before the last page is read.
    rig.seed([], [person(i) for i in range(1, 61)])
    leavers = {i for i in range(1, 61) if i % 3 == 0}
    cache(guild, set(range(1, 61)) - leavers)
    seen_at_check: list[dict[int, bool]] = []
    guild.before_answer = lambda: seen_at_check.append(in_guild(rig))
    report = await sync(rig)
    [asked] = guild.asked
    assert set(asked) == leavers, "fewer than 50 leavers: every one of them is checked"
    assert seen_at_check == [dict.fromkeys(range(1, 61), True)], "a leave was written first"
    assert {i for i, present in in_guild(rig).items() if not present} == leavers
    assert (report.left, report.leaves_withheld, report.status) == (len(leavers), 0, "finished")
    assert rig.of_type(LeaversWithheld) == []
    assert rig.mismatches() == []


async def test_the_sample_is_at_most_fifty_leavers_drawn_at_random(partial):
    rig, guild = partial
    rig.seed([], [person(i) for i in range(1, 301)])
    cache(guild, range(1, 101))
    guild.on_discord = {300}  # one of the 200 leavers is still a member; the sample may miss it
    await sync(rig)
    [asked] = guild.asked
    assert len(asked) == len(set(asked)) == LEAVER_SAMPLE == 50
    assert set(asked) <= set(range(101, 301))
    assert sorted(asked) != list(range(101, 151)), "the sample is not the first leavers found"
    assert rig.site.stats.by_route[BULK_PATCH] >= 1


async def test_a_check_that_cannot_ask_discord_marks_nobody_left(partial):
    rig, guild = partial
    rig.seed([], [person(i) for i in range(1, 21)])
    cache(guild, range(1, 16))
    guild.failure = RuntimeError("Discord answered 503")
    report = await sync(rig)
    assert all(in_guild(rig).values())
    assert report.leaves_withheld == 5 and report.status == "partial"
    [withheld] = rig.of_type(LeaversWithheld)
    assert withheld.still_members == () and "Discord answered 503" in withheld.error


async def test_a_guild_with_no_one_to_ask_marks_leavers_as_it_finds_them(rig: Rig):
    """An in-memory guild is its own authority (tests, benchmarks): nothing to check."""
    rig.seed([], [person(i) for i in range(1, 21)])
    for i in range(1, 16):
        rig.guild.add_member(person(i))
    report = await sync(rig)
    assert report.left == 5 and report.leaves_withheld == 0 and report.status == "finished"
    assert rig.mismatches() == []


async def test_plan_updates_carry_the_counts_per_field_found_so_far(partial):
    rig, guild = partial
    rig.seed([], [person(i) for i in range(1, 61)])
    cache(guild, range(1, 61), renamed=range(1, 61, 2))
    report = await sync(rig)
    updates = [e for e in rig.of_type(PlanUpdated) if e.run_id == report.run_id]
    assert updates[-1].final and updates[-1].by_field == {"name": 30}
    assert [e.by_field for e in updates[:-1]] == [{"name": 13}, {"name": 25}]
    assert isinstance(report, RunFinished) and report.updated == 30
