"""The rehearsal's checks on a site, in process: id collisions, counters a site may lack."""

from __future__ import annotations

import io

import pytest
from aiohttp import web

from bot.sandbox.discord import LoopbackDiscord
from bot.sandbox.external_site import (
    ExternalSite,
    RehearsalClient,
    SiteRefused,
    prepare,
    site_stats,
)
from bot.sandbox.site.process import SiteProcess
from bot.sandbox.world import SandboxGuild
from guild_sync.site.client import SiteClient
from guild_sync.site.records import User
from tests.rehearsal.support import TOKEN


async def test_a_simulated_id_the_site_already_uses_is_refused_before_any_write(
    site: SiteProcess, client: SiteClient
) -> None:
    async with LoopbackDiscord() as discord:
        guild = SandboxGuild.build(discord, 20)
        taken = guild.ordinary_member_id
        await client.create_users([User(taken, "someone-real", "", 0, frozenset())])
        stats_before = await client.request("GET", "_sandbox/stats")
        rehearsal = RehearsalClient(rehearsal_site(site))
        try:
            with pytest.raises(SiteRefused, match=rf"1 users and 0 roles .* \(e\.g\. {taken}\)"):
                await prepare(rehearsal, rehearsal_site(site), guild, seed=True, out=io.StringIO())
        finally:
            await rehearsal.close()
    stats_after = await client.request("GET", "_sandbox/stats")
    assert stats_after["by_route"].get("POST /api/bot/users") == 1  # ours, above
    assert stats_after["by_route"].get("POST /api/bot/roles") is None
    assert stats_after["requests"] > stats_before["requests"]  # it did read the site


async def test_changes_to_existing_records_are_reported_and_hidden_from_the_world_check(
    site: SiteProcess, client: SiteClient
) -> None:
    existing = [User(5, "kept", "", 1, frozenset()), User(6, "renamed later", "", 2, frozenset())]
    await client.create_users(existing)
    async with LoopbackDiscord() as discord:
        guild = SandboxGuild.build(discord, 20)
        rehearsal = RehearsalClient(rehearsal_site(site))
        try:
            await prepare(rehearsal, rehearsal_site(site), guild, seed=True, out=io.StringIO())
            await client.request("PATCH", "bot/users/6", json={"name": "changed"})
            shown = [user async for page in rehearsal.iter_user_pages() for user in page]
        finally:
            await rehearsal.close()
    assert {user.id for user in shown} == set(guild.state.members)
    assert rehearsal.existing_changes() == ["existing user 6 was changed"]


def rehearsal_site(site: SiteProcess) -> ExternalSite:
    return ExternalSite(site.url, TOKEN, allow_existing=True)


async def test_a_site_without_the_sandbox_counters_reports_none() -> None:
    app = web.Application()  # a site whose only answer is Django's 404 for unknown paths
    runner = web.AppRunner(app)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with SiteClient(f"http://127.0.0.1:{port}/api", TOKEN) as client:
            assert await site_stats(client) is None
    finally:
        await runner.cleanup()
