"""The cost model inside the site: workers that queue and overlap requests, modelled CPU in the
stats, memory that grows with a request, and a request that dies at the memory limit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from bot.sandbox.site import DEFAULT_TOKEN, SandboxSite
from bot.sandbox.site.cli import main as site_main
from bot.sandbox.site.cost import (
    CONTENTION_PER_REQUEST,
    REQUEST_S,
    WORKER_RSS_MIB,
    CostConfig,
    bulk_patch_work,
    cascade_work,
    create_work,
    page_work,
)
from bot.sandbox.site.process import start_site_process
from tests.sandbox_site.conftest import Api, role_json, user_json
from tests.sandbox_site.virtual_clock import VirtualClock

ROLES = "GET /api/bot/roles"
BULK_PATCH = "PATCH /api/bot/users/bulk_patch"
INSTANT = CostConfig(model="real", time_scale=0)
"""The real cost model on a clock that does not wait: every modelled second still counted."""


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """A bounded wait on the site's own counters (they signal no event)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _open(site: SandboxSite) -> AsyncIterator[Api]:
    async with site, aiohttp.ClientSession() as session:
        yield Api(session, site.url)


@pytest.fixture
async def clock() -> VirtualClock:
    return VirtualClock()


async def test_without_a_cost_model_nothing_waits_and_nothing_is_counted(api: Api) -> None:
    await api.ok("POST", "bot/users", [user_json(i) for i in range(1, 4)])
    stats = await api.ok("GET", "_sandbox/stats")
    assert (stats["site_cost"], stats["site_cpu_s"]) == ("none", 0.0)
    assert "site_workers" not in stats


@pytest.mark.parametrize("workers", [1, 2])
async def test_workers_serve_one_request_each_and_the_rest_queue(
    clock: VirtualClock, workers: int
) -> None:
    site = SandboxSite(cost=CostConfig(model="real", workers=workers), clock=clock)
    async with _open(site) as api:
        calls = [asyncio.create_task(api.call("GET", "bot/roles")) for _ in range(3)]
        await until(lambda: site.cost.busy + site.cost.queued == 3)
        # One worker: one served, two queued; two workers: they overlap.
        assert (site.cost.busy, site.cost.queued) == (workers, 3 - workers)
        assert site.stats.routes[ROLES].in_flight == 3  # queued requests are in flight
        stats = await api.ok("GET", "_sandbox/stats")  # control routes never queue
        assert (stats["site_busy_workers"], stats["site_queued"]) == (workers, 3 - workers)

        # One process holds all three (its threads run them at once): the one on the worker
        # pays CONTENTION_PER_REQUEST of its time for each of the two others; sync workers
        # hold one request each and pay nothing.
        others = 2 if workers == 1 else 0
        first = REQUEST_S * (1 + CONTENTION_PER_REQUEST * others)
        clock.advance(REQUEST_S)
        if others:
            await until(lambda: clock.sleeping == 1)  # the first request's contention
            clock.advance()
        await until(lambda: site.stats.routes[ROLES].in_flight == 3 - workers)
        assert [call.done() for call in calls].count(True) == workers
        assert clock.time == pytest.approx(first)
        while not all(call.done() for call in calls):
            await until(lambda: clock.sleeping > 0 or all(call.done() for call in calls))
            clock.advance()
        assert [call.result().status for call in calls] == [200, 200, 200]
        # Three requests of 5 ms each: on two workers 10 ms, 15 ms of CPU; on one process
        # 15 ms plus contention (two others held during the first, one during the second).
        contention = REQUEST_S * CONTENTION_PER_REQUEST * (3 if workers == 1 else 0)
        assert clock.time == pytest.approx(REQUEST_S * (3 if workers == 1 else 2) + contention)
        stats = await api.ok("GET", "_sandbox/stats")
        assert stats["site_cpu_s"] == pytest.approx(3 * REQUEST_S + contention, abs=1e-3)
        assert stats["site_contention_cpu_s"] == pytest.approx(contention, abs=1e-3)
        assert stats["routes"][ROLES]["cpu_s"] == pytest.approx(3 * REQUEST_S + contention)
        assert stats["routes"][ROLES]["peak_in_flight"] == 3
        assert stats["site_peak_queued"] == 3 - workers


async def test_each_route_is_charged_its_modelled_cost() -> None:
    site = SandboxSite(cost=INSTANT)
    async with _open(site) as api:
        await api.ok("POST", "bot/roles", role_json(7))
        users = [user_json(i, roles=[7]) for i in range(1, 2001)]
        await api.ok("POST", "bot/users", users)
        await api.ok("GET", "bot/users", params={"page": 1, "page_size": 1500})
        await api.ok("GET", "bot/users", params={"page": 2, "page_size": 1500})  # 500 rows
        patches = [{"id": i, "roles": []} for i in range(1, 1001)]
        await api.ok("PATCH", "bot/users/bulk_patch", patches)
        await api.ok("DELETE", "bot/roles/7")  # still held by users 1001..2000
        stats = await api.ok("GET", "_sandbox/stats")

    routes = stats["routes"]
    expected = {
        "POST /api/bot/roles": REQUEST_S,
        "POST /api/bot/users": create_work(users).cpu_s,
        "GET /api/bot/users": page_work(1500).cpu_s + page_work(500).cpu_s,
        BULK_PATCH: bulk_patch_work(patches).cpu_s,
        "DELETE /api/bot/roles/{id}": cascade_work(1000).cpu_s,
    }
    assert {route: pytest.approx(routes[route]["cpu_s"]) for route in expected} == expected
    assert stats["site_cpu_s"] == pytest.approx(sum(expected.values()), abs=1e-3)


async def test_memory_grows_with_the_request_while_it_is_served(clock: VirtualClock) -> None:
    site = SandboxSite(cost=CostConfig(model="real", workers=1), clock=clock)
    site.store.insert_users_ignoring_existing(user_json(i) for i in range(1, 1001))
    async with _open(site) as api:
        rest = WORKER_RSS_MIB
        assert site.cost.memory_mib() == rest

        body = [user_json(i, name=f"new{i}") for i in range(1, 1001)]
        work = bulk_patch_work(body)
        call = asyncio.create_task(api.call("PATCH", "bot/users/bulk_patch", body))
        await until(lambda: clock.sleeping == 1)
        full = work.memory_bytes / 2**20
        assert 26 < full < 28  # 1,000 full users: +26.5 MiB measured
        clock.advance(work.ramp_s / 2)
        stats = await api.ok("GET", "_sandbox/stats")
        assert stats["site_memory_mib"] == pytest.approx(rest + full / 2, abs=0.1)
        clock.advance(work.ramp_s / 2)
        assert site.cost.memory_mib() == pytest.approx(rest + full)
        assert not call.done()  # the rest of its time: the statement, memory held
        clock.advance()
        assert (await call).status == 200
        assert site.cost.memory_mib() == rest
        assert site.cost.peak_memory_mib == pytest.approx(rest + full)


async def test_a_request_past_the_memory_limit_dies_unanswered_and_writes_nothing() -> None:
    limit = 2 * WORKER_RSS_MIB + 10  # room for about 370 full users
    site = SandboxSite(cost=CostConfig(model="real", memory_limit_mib=limit, time_scale=0))
    site.store.insert_users_ignoring_existing(user_json(i) for i in range(1, 1001))
    async with _open(site) as api:
        body = [user_json(i, name=f"new{i}") for i in range(1, 1001)]
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.call("PATCH", "bot/users/bulk_patch", body)

        assert site.store.get_user(1)["name"] == "user1"  # nothing written
        stats = await api.ok("GET", "_sandbox/stats")
        assert stats["site_oom_kills"] == 1
        assert stats["routes"][BULK_PATCH]["oom_kills"] == 1
        assert stats["routes"][BULK_PATCH]["in_flight"] == 0
        oom = stats["site_last_oom"]
        assert (oom["reached_mib"], oom["limit_mib"], oom["answer"]) == (limit, limit, "drop")
        assert oom["request_items_mib"] > 26
        assert stats["site_peak_memory_mib"] == limit
        # The worker comes back; a request the size the bot sends fits.
        small = [{"id": i, "roles": []} for i in range(1, 1001)]
        assert (await api.call("PATCH", "bot/users/bulk_patch", small)).status == 200
        stats = await api.ok("GET", "_sandbox/stats")
        assert stats["site_peak_memory_since_kill_mib"] < limit


async def test_behind_a_proxy_the_dead_worker_is_a_502() -> None:
    cost = CostConfig(model="real", memory_limit_mib=240, time_scale=0, oom_answer="502")
    site = SandboxSite(cost=cost)
    site.store.insert_users_ignoring_existing(user_json(i) for i in range(1, 201))
    async with _open(site) as api:
        reply = await api.call(
            "PATCH", "bot/users/bulk_patch", [user_json(i) for i in range(1, 201)]
        )
        assert (reply.status, reply.is_html) == (502, True)
        assert "502 Bad Gateway" in reply.text


async def test_a_held_request_takes_no_worker() -> None:
    site = SandboxSite(cost=CostConfig(model="real", workers=1, time_scale=0))
    async with _open(site) as api:
        await api.ok("POST", "bot/users", [user_json(1)])
        site.hold.arm(BULK_PATCH, 0)
        held = asyncio.create_task(api.call("PATCH", "bot/users/bulk_patch", [user_json(1)]))
        await until(lambda: site.hold.waiting == 1)
        assert (await api.call("GET", "bot/roles")).status == 200  # the worker is free
        assert site.stats.routes[BULK_PATCH].in_flight == 1
        site.hold.release()
        assert (await held).status == 200


async def test_the_site_process_takes_its_cost_model_from_flags(tmp_path: Path) -> None:
    cost = CostConfig(model="real", workers=1, memory_limit_mib=500, time_scale=0)
    with start_site_process(db=str(tmp_path / "site.db"), cost=cost) as process:
        assert process.cost == cost
        async with aiohttp.ClientSession() as session:
            api = Api(session, process.url)
            await api.ok("GET", "bot/roles")
            stats = await api.ok("GET", "_sandbox/stats")
    assert (stats["site_cost"], stats["site_workers"], stats["site_memory_limit_mib"]) == (
        "real",
        1,
        500,
    )
    assert stats["site_cpu_s"] == pytest.approx(REQUEST_S, abs=1e-3)


@pytest.mark.parametrize("flags", [["--workers", "0"], ["--cost", "cheap"], ["--time-scale", "-1"]])
def test_the_site_command_line_refuses_impossible_cost_settings(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        site_main([*flags, "--token", DEFAULT_TOKEN])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err
