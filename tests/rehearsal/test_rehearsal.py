"""`python -m bot sandbox --site-url`: a rehearsal against a site in another process.

The "staging site" is a sandbox site started apart from the rehearsal, on a fresh database, so
the rehearsal knows it only by its URL and token, as it would know an operator's site.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bot.sandbox.site.process import SiteProcess
from guild_sync.site.client import SiteClient
from guild_sync.site.records import Role, User
from tests.rehearsal.support import TOKEN, last_json, run_command

MEMBERS = 2000
EXISTING_ROLE = Role(7, "Staff (staging)", 0x00FF00, 8, 40)
EXISTING_USERS = [
    User(100 + n, f"staging{n}", "", n, frozenset({EXISTING_ROLE.id}), in_guild=n % 2 == 0)
    for n in range(30)
]


def rehearse(site: SiteProcess, tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    done = run_command(
        ["-m", "bot", "sandbox", "--site-url", site.url, "--site-token", TOKEN, *extra], tmp_path
    )
    return done.returncode, done.stdout, done.stderr


async def site_contents(client: SiteClient) -> tuple[list[Role], list[User]]:
    users = [user async for page in client.iter_user_pages() for user in page]
    return sorted(await client.list_roles(), key=lambda r: r.id), users


def writes(stats: dict) -> dict[str, int]:
    return {route: n for route, n in stats["by_route"].items() if not route.startswith("GET")}


@pytest.mark.timeout(120)
async def test_rehearsal_seeds_an_empty_site_in_bounded_creates_and_ends_consistent(
    site: SiteProcess, client: SiteClient, tmp_path: Path
) -> None:
    status, out, err = rehearse(site, tmp_path, "--members", str(MEMBERS))

    summary = last_json(out)
    assert status == 0, err + out[-3000:]
    assert summary["consistent"] is True and summary["site"] == "external"
    assert f"Seeding the site: {MEMBERS:,} / {MEMBERS:,} users" in out
    stats = await client.request("GET", "_sandbox/stats")
    # Two seeding creates of 1,000 users, never one big one; then the bot's chunked strip.
    assert stats["by_route"]["POST /api/bot/users"] == MEMBERS // 1000
    assert stats["largest_request_items"] <= 1000
    assert summary["max_items_per_request"] == stats["largest_request_items"]
    assert stats["by_route"]["PATCH /api/bot/users/bulk_patch"] >= 2
    assert 0 < summary["site_requests"] < stats["requests"]  # the bot's share, not the seeding
    assert summary["site_peak_rss_mib"] > 0
    _, users = await site_contents(client)
    assert len(users) == MEMBERS and all(user.in_guild for user in users)
    # The community guild: the deletion left most members one to three roles besides
    # @everyone, a minority none (so its writes cost the site what the real guild's would).
    kept = Counter(len(user.roles) - 1 for user in users)
    assert kept[0] < MEMBERS / 4 and kept[1] + kept[2] + kept[3] > MEMBERS * 0.7, kept


@pytest.mark.timeout(120)
async def test_bad_records_is_rehearsed_against_a_site_known_only_by_its_url(
    site: SiteProcess, client: SiteClient, tmp_path: Path
) -> None:
    status, out, err = rehearse(site, tmp_path, "--scenario", "bad-records", "--members", "300")

    summary = last_json(out)
    assert status == 0, err + out[-3000:]
    assert summary["consistent"] is True and summary["site"] == "external"
    # The two members the site's contract cannot store were rejected by the site itself and
    # listed in the log channel; nothing the bot sent could ping anyone.
    assert len(summary["isolated"]) == 2 and summary["isolated_unlisted"] == []
    assert summary["errors_reported"] >= 1 and summary["unsafe_messages"] == 0
    stats = await client.request("GET", "_sandbox/stats")
    assert stats["largest_request_items"] <= 1000


async def test_a_site_that_holds_records_is_refused_and_left_untouched(
    site: SiteProcess, client: SiteClient, tmp_path: Path
) -> None:
    await client.create_role(EXISTING_ROLE)
    await client.create_users(EXISTING_USERS)
    before = await site_contents(client)
    writes_before = writes(await client.request("GET", "_sandbox/stats"))

    status, out, err = rehearse(site, tmp_path, "--members", "100")

    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: the site at ") and "30 users and 1 roles" in err
    assert "--allow-existing" in err and "mark the existing users as left" in err
    assert "{" not in out  # no summary: nothing ran
    assert writes(await client.request("GET", "_sandbox/stats")) == writes_before
    assert await site_contents(client) == before


@pytest.mark.timeout(120)
async def test_allow_existing_rehearses_beside_records_it_leaves_as_they_were(
    site: SiteProcess, client: SiteClient, tmp_path: Path
) -> None:
    await client.create_role(EXISTING_ROLE)
    await client.create_users(EXISTING_USERS)
    before_roles, before_users = await site_contents(client)

    status, out, err = rehearse(site, tmp_path, "--members", "1000", "--allow-existing")

    summary = last_json(out)
    assert status == 0, err + out[-3000:]
    assert summary["consistent"] is True and summary["mismatches"] == 0
    assert "The site already holds 30 users and 1 roles" in out
    assert "without its start-up sync" in out and "dry run of users" in out
    roles, users = await site_contents(client)
    assert EXISTING_ROLE in roles and len(roles) > len(before_roles)
    existing = {user.id: user for user in users if user.id < 1000}
    assert sorted(existing.values(), key=lambda u: u.id) == before_users
    assert len(users) == len(before_users) + 1000


async def test_refusals_need_a_token_and_a_url(tmp_path: Path) -> None:
    no_token = run_command(
        ["-m", "bot", "sandbox", "--site-url", "http://127.0.0.1:9/api"], tmp_path
    )
    no_url = run_command(["-m", "bot", "sandbox", "--allow-existing"], tmp_path)

    assert no_token.returncode == 2 and "--site-token" in no_token.stderr
    assert no_url.returncode == 2 and "need --site-url" in no_url.stderr
    assert len(no_token.stderr.strip().splitlines()) == len(no_url.stderr.strip().splitlines()) == 1
