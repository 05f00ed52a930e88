"""The diff compares what the site would store: names the site strips are not a difference on
every run (sandbox site over HTTP, which strips as the real site does)."""

from __future__ import annotations

import asyncio

from guild_sync.engine import BadRecords
from guild_sync.site.records import Role, User

from .conftest import BULK_PATCH, Rig, person


def _user_writes(rig: Rig) -> int:
    return sum(
        route.requests
        for name, route in rig.site.stats.routes.items()
        if name in (BULK_PATCH, "POST /api/bot/users")
    )


async def test_a_padded_display_name_is_written_once_then_seen_as_unchanged(rig: Rig) -> None:
    rig.seed([], [person(1), person(2)])
    rig.guild.add_member(User(1, "user1", "nick\u3000", 1, frozenset()))
    rig.guild.add_member(person(2))

    first = await asyncio.wait_for(rig.engine.sync_users(), 10)
    writes = _user_writes(rig)
    second = await asyncio.wait_for(rig.engine.sync_users(), 10)

    assert (first.updated, writes) == (1, 1)
    assert rig.site_users()[1].display_name == "nick"
    assert (second.updated, second.unchanged) == (0, 2)
    assert _user_writes(rig) == writes, "the second sync wrote again"


async def test_a_padded_role_name_is_written_once(rig: Rig) -> None:
    rig.guild.add_role(Role(7, " mods ", 0, 0, 1))
    await asyncio.wait_for(rig.engine.sync_roles(), 10)
    second = await asyncio.wait_for(rig.engine.sync_roles(), 10)
    assert [role.name for role in rig.site.store.all_roles()] == ["mods"]
    assert (second.created, second.updated) == (0, 0)


async def test_a_name_of_only_whitespace_is_reported_as_unstorable_not_retried(rig: Rig) -> None:
    rig.seed([], [person(1), person(2)])
    rig.guild.add_member(User(1, " \u3000 ", "", 1, frozenset()))
    rig.guild.add_member(person(2, "renamed"))
    report = await asyncio.wait_for(rig.engine.sync_users(), 10)
    await asyncio.wait_for(rig.engine.hub.idle(), 5)

    assert (report.updated, report.failed) == (1, 1)
    (bad,) = rig.of_type(BadRecords)
    assert bad.ids == (1,) and "blank" in bad.message
    assert rig.site.stats.routes[BULK_PATCH].requests <= 2  # one refusal, then the good one
