"""`bot/roles`: every row of the contract's table, validation bodies and the delete cascade."""

from __future__ import annotations

import pytest

from bot.sandbox.site import SandboxSite
from tests.sandbox_site.conftest import Api, role_json, user_json


async def test_list_is_ordered_by_position_descending(api: Api) -> None:
    for role_id, position in [(1, 5), (2, 9), (3, 0)]:
        await api.ok("POST", "bot/roles", role_json(role_id, position))
    roles = await api.ok("GET", "bot/roles")
    assert [r["id"] for r in roles] == [2, 1, 3]
    assert roles[0] == role_json(2, 9)


async def test_post_echoes_with_201_and_get_returns_it(api: Api) -> None:
    reply = await api.call("POST", "bot/roles", role_json(7, 3, name="  Mods  ", colour="42"))
    assert reply.status == 201
    assert reply.json == role_json(7, 3, name="Mods", colour=42)
    assert await api.ok("GET", "bot/roles/7") == role_json(7, 3, name="Mods", colour=42)


async def test_get_missing_role_is_404(api: Api) -> None:
    reply = await api.call("GET", "bot/roles/99")
    assert (reply.status, reply.json) == (404, {"detail": "No Role matches the given query."})
    reply = await api.call("GET", "bot/roles/abc")
    assert (reply.status, reply.json) == (404, {"detail": "Not found."})


async def test_post_list_is_400(api: Api) -> None:
    reply = await api.call("POST", "bot/roles", [role_json(1)])
    assert reply.status == 400
    assert reply.json == {
        "non_field_errors": ["Invalid data. Expected a dictionary, but got list."]
    }


async def test_post_duplicate_id_is_400(api: Api) -> None:
    await api.ok("POST", "bot/roles", role_json(1))
    reply = await api.call("POST", "bot/roles", role_json(1))
    assert (reply.status, reply.json) == (400, {"id": ["role with this ID already exists."]})


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"id": -1}, {"id": ["Ensure this value is greater than or equal to 0."]}),
        (
            {"id": 2**63},
            {"id": ["Ensure this value is less than or equal to 9223372036854775807."]},
        ),
        ({"name": ""}, {"name": ["This field may not be blank."]}),
        ({"name": "x" * 101}, {"name": ["Ensure this field has no more than 100 characters."]}),
        ({"colour": 2**31}, {"colour": ["Ensure this value is less than or equal to 2147483647."]}),
        (
            {"permissions": -5},
            {"permissions": ["Ensure this value is greater than or equal to 0."]},
        ),
        (
            {"position": -(2**31) - 1},
            {"position": ["Ensure this value is greater than or equal to -2147483648."]},
        ),
        ({"position": 4.5}, {"position": ["A valid integer is required."]}),
        ({"colour": None}, {"colour": ["This field may not be null."]}),
    ],
)
async def test_post_validation(api: Api, changes: dict, errors: dict) -> None:
    reply = await api.call("POST", "bot/roles", role_json(1, **changes))
    assert (reply.status, reply.json) == (400, errors)
    assert await api.ok("GET", "bot/roles") == []


async def test_post_missing_fields_all_reported_in_field_order(api: Api) -> None:
    reply = await api.call("POST", "bot/roles", {"name": "x"})
    required = ["This field is required."]
    assert reply.status == 400
    assert list(reply.json.items()) == [
        ("id", required),
        ("colour", required),
        ("permissions", required),
        ("position", required),
    ]


async def test_put_needs_all_fields_and_replaces(api: Api) -> None:
    await api.ok("POST", "bot/roles", role_json(1, 1))
    reply = await api.call("PUT", "bot/roles/1", {"name": "new"})
    assert reply.status == 400
    assert set(reply.json) == {"id", "colour", "permissions", "position"}
    updated = role_json(1, 4, name="new", colour=3, permissions=8)
    assert await api.ok("PUT", "bot/roles/1", updated) == updated
    assert await api.ok("GET", "bot/roles/1") == updated
    reply = await api.call("PUT", "bot/roles/2", role_json(2))
    assert (reply.status, reply.json) == (404, {"detail": "No Role matches the given query."})


async def test_patch_is_partial(api: Api) -> None:
    await api.ok("POST", "bot/roles", role_json(1, 1))
    assert await api.ok("PATCH", "bot/roles/1", {"position": 6}) == role_json(1, 6)
    reply = await api.call("PATCH", "bot/roles/1", {"position": "high"})
    assert (reply.status, reply.json) == (400, {"position": ["A valid integer is required."]})
    assert (await api.call("PATCH", "bot/roles/2", {"position": 1})).status == 404


async def test_delete_is_204_then_404(api: Api) -> None:
    await api.ok("POST", "bot/roles", role_json(1))
    reply = await api.call("DELETE", "bot/roles/1")
    assert (reply.status, reply.text) == (204, "")
    reply = await api.call("DELETE", "bot/roles/1")
    assert (reply.status, reply.json) == (404, {"detail": "No Role matches the given query."})


async def test_delete_strips_the_role_from_every_holder(api: Api, site: SandboxSite) -> None:
    for role_id in (2, 12, 21):
        await api.ok("POST", "bot/roles", role_json(role_id))
    users = [
        user_json(1, roles=[2, 12]),
        user_json(2, roles=[12, 21]),
        user_json(3, roles=[21, 2]),
        user_json(4, roles=[2]),
        user_json(5),
    ]
    await api.ok("POST", "bot/users", users)
    await api.ok("DELETE", "bot/roles/2")
    page = await api.ok("GET", "bot/users")
    assert {u["id"]: u["roles"] for u in page["results"]} == {
        1: [12],
        2: [12, 21],
        3: [21],
        4: [],
        5: [],
    }
    assert site.stats.role_cascade_users == 3
    reply = await api.call("PATCH", "bot/users/bulk_patch", [{"id": 1, "roles": [2]}])
    assert (reply.status, reply.json) == (400, [{"roles": ["Role with ID 2 does not exist"]}])
