"""Which scenarios a rehearsal plays against an operator's site, and the guild it writes there.

The refusal used to name three scenarios by hand; it now lists what the scenarios declare
(`rehearsable` in bot/sandbox/scenarios/registry.py), so each one that works against a real site
is accepted and named: `bad-records` (rehearsed end to end in test_rehearsal.py), and the
Discord-side fault and guard scenarios, each played against a site known only by its URL when
it was declared. The rehearsal's guild is the
community variant: members hold a community's spread of roles, so a rehearsed role deletion
leaves most of them one to three roles besides @everyone (the tests' guild leaves 90% only
@everyone)."""

from __future__ import annotations

from collections import Counter

import pytest

from bot.sandbox.discord import LoopbackDiscord
from bot.sandbox.external_site import ExternalSite, SiteRefused
from bot.sandbox.runner import _external_site, build_parser
from bot.sandbox.scenarios import SCENARIOS, Scenario
from bot.sandbox.scenarios.registry import rehearsable_names
from bot.sandbox.world import COMMUNITY_SPREAD, DEVELOPERS, SandboxGuild

SITE = ["--site-url", "http://staging.invalid/api", "--site-token", "t"]
MEMBERS = 4000


def external(scenario: str, *extra: str) -> ExternalSite | None:
    args = build_parser().parse_args([*SITE, "--scenario", scenario, *extra])
    return _external_site(args, SCENARIOS[scenario])


def test_every_declared_scenario_is_accepted_and_bad_records_is_one() -> None:
    names = rehearsable_names()
    assert names == [
        "bad-records",
        "chunk-rate-limit",
        "hostile-users",
        "mass-join",
        "member-updates",
        "partial-cache",
        "role-delete",
        "slow-chunks",
    ]
    for name in names:
        assert external(name) == ExternalSite("http://staging.invalid/api", "t", False)


def test_the_refusal_names_every_rehearsable_scenario() -> None:
    with pytest.raises(SiteRefused) as refused:
        external("flaky-site")
    assert "needs the sandbox site" in str(refused.value)
    assert f"rehearse one of {', '.join(rehearsable_names())} against" in str(refused.value)


def test_no_scenario_that_needs_the_sandbox_site_is_rehearsable() -> None:
    assert not [s.name for s in SCENARIOS.values() if s.rehearsable and s.needs_sandbox_site]

    async def play(_: object) -> None:
        return None

    with pytest.raises(ValueError, match="needs the sandbox site's controls"):
        Scenario("broken", "faults", play, site_faults={"fail": 0.5}, rehearsable=True)


def test_whole_syncs_are_refused_beside_existing_records() -> None:
    for name in ("bad-records", "partial-cache"):
        with pytest.raises(SiteRefused, match=r"runs whole user and role syncs.*an empty site"):
            external(name, "--allow-existing")
    assert external("role-delete", "--allow-existing") is not None


async def test_the_community_guild_spreads_roles_and_the_tests_guild_is_unchanged() -> None:
    async with LoopbackDiscord() as discord:
        community = SandboxGuild.community(discord, MEMBERS)
        again = SandboxGuild.community(discord, MEMBERS)
        plain = SandboxGuild.build(discord, MEMBERS)

    def kept(guild: SandboxGuild) -> Counter[int]:
        """Per member, the roles besides @everyone that a deletion of Developers leaves."""
        developers = guild.role_id(DEVELOPERS)
        return Counter(len(user.roles - {guild.id, developers}) for user in guild.expected_users())

    developers = community.role_id(DEVELOPERS)
    holders = sum(developers in m.roles for m in community.state.members.values())
    assert holders == MEMBERS - 2  # all but the owner and the bot, as in the outage
    spread = kept(community)
    for roles, share in COMMUNITY_SPREAD.items():
        assert spread[roles] == pytest.approx(share * MEMBERS, rel=0.15), spread
    assert spread[0] < MEMBERS / 4 and sum(spread[n] for n in (1, 2, 3)) > MEMBERS * 0.7
    assert kept(again) == spread  # seeded: the same guild every run
    assert kept(plain)[0] >= MEMBERS * 0.89  # the tests' guild: 90% keep only @everyone
