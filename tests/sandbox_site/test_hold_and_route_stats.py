"""The hold gate (a request stopped at a chosen point) and the per-route counts the site keeps:
what scenarios and tests read to know where a run was and what the site received."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.sandbox.site import SandboxSite
from tests.sandbox_site.conftest import Api, user_json

CREATE = "POST /api/bot/users"
BULK_PATCH = "PATCH /api/bot/users/bulk_patch"


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """A bounded wait on the site's own counters (they signal no event)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_the_gate_holds_the_first_request_past_its_items_and_every_later_one(
    api: Api, site: SandboxSite
) -> None:
    await api.ok("POST", "_sandbox/hold", {"route": CREATE, "after_items": 3})
    await api.ok("POST", "bot/users", [user_json(i) for i in (1, 2)])
    await api.ok("POST", "bot/users", [user_json(3)])  # 2 items before it: passes
    held = [asyncio.create_task(api.call("POST", "bot/users", [user_json(i)])) for i in (4, 5)]
    await until(lambda: site.hold.waiting == 2)

    state = await api.ok("GET", "_sandbox/hold")
    assert state == {
        "route": CREATE, "after_items": 3, "armed": True, "tripped": True, "items_before": 3,
        "waiting": 2,
    }  # fmt: skip
    assert site.store.count_users() == 3  # the held bodies are neither applied nor counted
    assert site.stats.routes[CREATE].items == 3
    assert (await api.call("GET", "bot/users")).status == 200  # other routes flow

    released = await api.ok("DELETE", "_sandbox/hold")
    assert (released["armed"], released["tripped"]) == (False, True)
    assert [reply.status for reply in await asyncio.gather(*held)] == [201, 201]
    assert site.store.count_users() == 5
    await api.ok("POST", "bot/users", [user_json(6)])  # once open, the route flows freely
    assert site.hold.waiting == 0


async def test_a_gate_armed_for_a_route_at_zero_items_holds_its_first_request(
    api: Api, site: SandboxSite
) -> None:
    await api.ok("POST", "bot/users", [user_json(1)])
    await api.ok("POST", "_sandbox/hold", {"route": BULK_PATCH, "after_items": 0})
    held = asyncio.create_task(api.call("PATCH", "bot/users/bulk_patch", [{"id": 1, "name": "x"}]))
    await until(lambda: site.hold.waiting == 1)
    assert site.stats.bulk_patch_items == 0
    site.hold.release()
    assert (await held).status == 200


async def test_a_forgotten_gate_opens_by_itself(api: Api, site: SandboxSite) -> None:
    await api.ok("POST", "_sandbox/hold", {"route": CREATE, "max_hold_s": 0.05})
    assert (await api.call("POST", "bot/users", [user_json(1)])).status == 201
    assert site.hold.tripped


async def test_bad_hold_settings_are_refused(api: Api) -> None:
    for body in ({}, {"route": CREATE, "after_items": "3"}, {"route": CREATE, "after_items": -1}):
        assert (await api.call("POST", "_sandbox/hold", body)).status == 400
    assert (await api.ok("GET", "_sandbox/hold"))["armed"] is False


async def test_routes_count_their_largest_and_empty_requests(api: Api, site: SandboxSite) -> None:
    await api.ok("POST", "bot/users", [user_json(i) for i in range(1, 5)])
    await api.call("POST", "bot/users", [])
    await api.call("PATCH", "bot/users/bulk_patch", [])
    await api.ok("PATCH", "bot/users/bulk_patch", [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    await api.ok("POST", "_sandbox/faults", {"seed": 1})  # control requests are not counted

    stats = await api.ok("GET", "_sandbox/stats")
    create, patch = stats["routes"][CREATE], stats["routes"][BULK_PATCH]
    assert (create["requests"], create["items"], create["largest_items"]) == (2, 4, 4)
    assert (patch["requests"], patch["largest_items"], patch["empty_requests"]) == (2, 2, 1)
    assert stats["empty_requests"] == 2
    assert not [route for route in stats["routes"] if "_sandbox" in route]


async def test_in_flight_is_counted_by_the_site_from_arrival_to_answer(
    api: Api, site: SandboxSite
) -> None:
    await api.ok("POST", "bot/users", [user_json(i) for i in range(1, 4)])
    assert site.stats.routes[CREATE].peak_in_flight == 1
    site.hold.arm(BULK_PATCH, 0)
    held = [
        asyncio.create_task(api.call("PATCH", "bot/users/bulk_patch", [{"id": i, "name": "n"}]))
        for i in range(1, 4)
    ]
    await until(lambda: site.hold.waiting == 3)
    assert site.stats.routes[BULK_PATCH].in_flight == 3
    site.hold.release()
    await asyncio.gather(*held)

    stats = await api.ok("GET", "_sandbox/stats")
    assert stats["routes"][BULK_PATCH]["peak_in_flight"] == 3
    assert stats["routes"][BULK_PATCH]["in_flight"] == 0
    assert stats["user_writes_peak_in_flight"] == 3
