"""Fault injection (seeded, switchable at run time) and the stats the site keeps."""

from __future__ import annotations

import time

import aiohttp
import pytest

from bot.sandbox.site import FaultConfig, SandboxSite
from tests.sandbox_site.conftest import Api, user_json


async def _statuses(api: Api, count: int) -> list[int]:
    return [(await api.call("GET", "bot/roles")).status for _ in range(count)]


async def test_seeded_faults_repeat(api: Api, site: SandboxSite) -> None:
    settings = {"error_500": 0.3, "rate_limit_429": 0.2, "seed": 5}
    assert (await api.ok("POST", "_sandbox/faults", settings))["error_500"] == 0.3
    first = await _statuses(api, 60)
    await api.ok("POST", "_sandbox/faults", {"seed": 5})
    second = await _statuses(api, 60)
    assert first == second
    assert {200, 429, 500} == set(first)
    await api.ok("POST", "_sandbox/faults", {"seed": 6})
    third = await _statuses(api, 60)
    assert third != first
    assert site.stats.faults["500"] == 2 * first.count(500) + third.count(500)
    assert site.stats.faults["429"] == 2 * first.count(429) + third.count(429)


async def test_fault_counts_match_the_answers(api: Api, site: SandboxSite) -> None:
    await api.ok("POST", "_sandbox/faults", {"error_500": 0.5, "seed": 1})
    statuses = await _statuses(api, 40)
    assert site.stats.faults["500"] == statuses.count(500) > 0


async def test_429_carries_retry_after(api: Api) -> None:
    await api.ok("POST", "_sandbox/faults", {"rate_limit_429": 1.0, "retry_after": 0.2})
    reply = await api.call("GET", "bot/users")
    assert reply.status == 429
    assert float(reply.headers["Retry-After"]) == pytest.approx(0.2)
    assert reply.json == {"detail": "Request was throttled. Expected available in 1 second."}


async def test_drop_closes_the_connection_after_applying_the_write(api: Api) -> None:
    await api.ok("POST", "bot/users", user_json(1))
    await api.ok("POST", "_sandbox/faults", {"drop": 1.0})
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.call("PATCH", "bot/users/1", {"name": "landed"})
    await api.ok("POST", "_sandbox/faults", {"drop": 0.0})
    assert (await api.ok("GET", "bot/users/1"))["name"] == "landed"


async def test_slow_delays_the_answer(api: Api) -> None:
    await api.ok("POST", "_sandbox/faults", {"slow": 1.0, "slow_delay": 0.3})
    started = time.monotonic()
    reply = await api.call("GET", "bot/roles")
    assert reply.status == 200
    assert time.monotonic() - started >= 0.3


async def test_reject_writes_switched_on_and_off_at_run_time(api: Api, site: SandboxSite) -> None:
    await api.ok("POST", "_sandbox/faults", {"reject_writes": True})
    reply = await api.call("POST", "bot/users", user_json(1))
    assert (reply.status, reply.is_html) == (500, True)
    assert (await api.call("GET", "bot/users")).status == 200
    assert site.store.count_users() == 0
    await api.ok("POST", "_sandbox/faults", {"reject_writes": False})
    assert (await api.call("POST", "bot/users", user_json(1))).status == 201
    assert site.stats.faults["reject_write"] == 1


async def test_write_only_spares_reads(api: Api) -> None:
    await api.ok("POST", "_sandbox/faults", {"error_500": 1.0, "write_only": True})
    assert (await api.call("GET", "bot/users")).status == 200
    assert (await api.call("PATCH", "bot/users/bulk_patch", [{"id": 1}])).status == 500


async def test_control_endpoints_and_healthcheck_are_never_faulted(api: Api) -> None:
    await api.ok("POST", "_sandbox/faults", {"error_500": 1.0})
    assert (await api.call("GET", "healthcheck")).status == 200
    assert (await api.call("GET", "_sandbox/stats")).status == 200
    assert (await api.call("GET", "bot/roles")).status == 500


@pytest.mark.parametrize(
    "settings",
    [{"error_500": 1.5}, {"error_500": 0.6, "drop": 0.6}, {"bogus": 1}, {"write_only": 1}, []],
)
async def test_invalid_fault_settings_are_rejected(api: Api, settings: object) -> None:
    reply = await api.call("POST", "_sandbox/faults", settings)
    assert reply.status == 400
    assert (await api.ok("GET", "_sandbox/faults")) == FaultConfig().to_json()


async def test_faults_given_at_start() -> None:
    async with (
        SandboxSite(faults=FaultConfig(error_500=1.0)) as site,
        aiohttp.ClientSession() as session,
    ):
        api = Api(session, site.url)
        assert (await api.call("GET", "bot/roles")).status == 500


async def test_stats_over_http(api: Api, site: SandboxSite) -> None:
    await api.ok("POST", "bot/users", [user_json(i) for i in range(3)])
    await api.call("GET", "bot/users/")
    stats = await api.ok("GET", "_sandbox/stats")
    assert stats["requests"] == 2
    assert stats["by_route"] == {"POST /api/bot/users": 1, "GET unmatched": 1}
    assert stats["largest_request_items"] == 3
    assert stats["largest_request_bytes"] > 3 * len('{"id": 0}')
    assert stats["peak_rss_bytes"] >= stats["current_rss_bytes"] > 10_000_000
    assert site.stats.snapshot()["requests"] == 2
