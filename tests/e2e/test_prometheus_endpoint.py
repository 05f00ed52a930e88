"""The bot's own Prometheus endpoint, scraped over HTTP during a sandbox run, counts that run.

The real bot (loopback Discord, sandbox site) with `SYNC_METRICS_PORT` set, as an operator
would set it: its runner's bot has no statsd, so the extension serves `/metrics` itself. The
start-up sync finds a stale site and writes every user. The site's hold gate keeps one of the
sync's chunks unanswered mid-way, so a scrape then sees the request in flight by construction;
once the gate opens and the sync finishes, a scrape finds the run counted and as many users
written as the site itself says it received (its own stats, not the bot's counters).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bot.sandbox.site import SandboxSite
from bot.sandbox.world import SandboxGuild
from tests.e2e.harness import eventually, running_bot, stale_site
from tests.unit.test_prometheus import scrape

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

BULK_PATCH = "PATCH /api/bot/users/bulk_patch"
MEMBERS = 60
CHUNK = 10
HELD_AFTER = 2 * CHUNK
"""The gate holds the third chunk: two written, four to go."""
USER_WRITE_METHODS = ("POST", "PUT", "PATCH")


def free_port() -> int:
    """A port nothing listens on now (the endpoint binds it with SO_REUSEADDR)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def users_received(site: SandboxSite) -> int:
    """Users in the write requests the site received, from its own counts per route."""
    return sum(
        route.items
        for name, route in site.stats.routes.items()
        if name.split(" ", 1)[0] in USER_WRITE_METHODS and " /api/bot/users" in name
    )


async def test_a_scrape_during_the_start_up_sync_sees_it_in_flight_then_counted(
    tmp_path: Path,
) -> None:
    port = free_port()
    stale = stale_site(every=1)

    def stale_and_held(guild: SandboxGuild, site: SandboxSite) -> None:
        stale(guild, site)
        site.hold.arm(BULK_PATCH, after_items=HELD_AFTER)

    async with running_bot(
        tmp_path,
        members=MEMBERS,
        seed_site=False,
        prepare=stale_and_held,
        wait_for_startup=False,
        settings={
            "SYNC_METRICS_PORT": str(port),
            "SYNC_CHUNK_SIZE": str(CHUNK),
            "SYNC_MAX_IN_FLIGHT": "1",
            # Every user is stale on purpose, so the mass-update guard would ask first.
            "SYNC_GUARD_UPDATE_SHARE": "1",
        },
    ) as h:
        assert type(h.cog.metrics.sink).__name__ == "PrometheusSink"
        await eventually(lambda: h.site.hold.waiting == 1)
        patch = h.site.stats.routes[BULK_PATCH]
        assert (patch.requests, patch.in_flight) == (3, 1)  # two answered, the third held
        held = await scrape(port)
        held_at_site = patch.in_flight
        h.site.hold.release()
        await eventually(h.cog.startup_done.is_set)
        summary = await h.wait_for_summary("User sync")
        done = await scrape(port)
        received = users_received(h.site)

    # Mid-way: the held request is in flight, the sync not yet counted.
    assert held("guild_sync_requests_in_flight") == held_at_site == 1
    assert held("guild_sync_runs_total", kind="users", outcome="finished") == 0
    assert held("guild_sync_users_total", outcome="written") == HELD_AFTER
    # Finished: counted once, every user the site received counted as written.
    assert summary.startswith("✅"), summary
    assert received == MEMBERS  # every member was stale
    assert done("guild_sync_runs_total", kind="users", outcome="finished") >= 1
    assert done("guild_sync_runs_total", kind="roles", outcome="finished") >= 1
    assert done("guild_sync_users_total", outcome="written") == received
    assert done("guild_sync_users_total", outcome="failed") == 0
    assert done("guild_sync_requests_in_flight") == 0
    assert done("guild_sync_breaker_open", kind="users") == 0
