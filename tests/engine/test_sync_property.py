"""For random site and guild states, syncing makes the site equal the guild, in bounded chunks."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guild_sync.site.records import Role, User

from .conftest import close_rig, make_rig

ROLE_IDS = range(1, 7)
USER_IDS = st.integers(min_value=1, max_value=80)
names = st.text(alphabet="abcxyz", min_size=1, max_size=6)


@st.composite
def roles(draw: st.DrawFn) -> dict[int, Role]:
    ids = draw(st.sets(st.sampled_from(ROLE_IDS)))
    return {
        i: Role(i, draw(names), draw(st.integers(0, 3)), 0, draw(st.integers(0, 5))) for i in ids
    }


@st.composite
def users(draw: st.DrawFn, role_ids: list[int], site: bool) -> dict[int, User]:
    ids = draw(st.sets(USER_IDS, max_size=40))
    pick_roles = st.sets(st.sampled_from(role_ids)) if role_ids else st.just(set())
    return {
        i: User(
            i,
            draw(names),
            draw(st.sampled_from(["", "nick"])),
            draw(st.integers(0, 2)),
            frozenset(draw(pick_roles)),
            draw(st.booleans()) if site else True,
        )
        for i in ids
    }


@st.composite
def states(draw: st.DrawFn) -> tuple:
    site_roles, guild_roles = draw(roles()), draw(roles())
    site_users = draw(users(sorted(site_roles), site=True))
    members = draw(users(sorted(guild_roles), site=False))
    knobs = (draw(st.integers(1, 7)), draw(st.integers(1, 3)), draw(st.integers(2, 12)))
    return site_roles, guild_roles, site_users, members, knobs


async def sync_once(site_roles, guild_roles, site_users, members, knobs) -> None:
    chunk_size, max_in_flight, page_size = knobs
    rig, site = await make_rig(
        chunk_size=chunk_size, max_in_flight=max_in_flight, page_size=page_size
    )
    try:
        rig.seed(site_roles.values(), site_users.values())
        for role in guild_roles.values():
            rig.guild.add_role(role)
        for member in members.values():
            rig.guild.add_member(member)
        roles_report = await asyncio.wait_for(rig.engine.sync_roles(), 10)
        users_report = await asyncio.wait_for(rig.engine.sync_users(), 10)
        assert (roles_report.status, users_report.status) == ("finished", "finished")
        assert rig.mismatches() == []
        assert rig.broken_bounds() == []  # chunk size, no empty request, window: at the site
        assert site.stats.role_cascade_users == 0
        again = await asyncio.wait_for(rig.engine.sync_users(dry_run=True), 10)
        assert again.plan.writes == 0, "a second sync must find nothing left to write"
    finally:
        await close_rig(rig)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states())
def test_sync_makes_the_site_equal_the_guild(state: tuple) -> None:
    asyncio.run(sync_once(*state))
