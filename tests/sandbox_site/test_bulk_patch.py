"""`PATCH bot/users/bulk_patch`: each check of the contract, in its order, with its exact body."""

from __future__ import annotations

from typing import Any

import pytest

from bot.sandbox.site import SandboxSite
from tests.sandbox_site.conftest import Api, role_json, user_json

PATH = "bot/users/bulk_patch"


@pytest.fixture
async def seeded(api: Api) -> Api:
    await api.ok("POST", "bot/roles", role_json(1))
    await api.ok("POST", "bot/users", [user_json(i) for i in range(1, 6)])
    return api


async def _users(api: Api) -> list[dict[str, Any]]:
    return (await api.ok("GET", "bot/users"))["results"]


async def test_success_returns_full_users_in_request_order(seeded: Api, site: SandboxSite) -> None:
    reply = await seeded.call(
        "PATCH", PATH, [{"id": 3, "roles": [1]}, {"id": 1, "name": "one", "in_guild": False}]
    )
    assert reply.status == 200
    assert reply.json == [user_json(3, roles=[1]), user_json(1, name="one", in_guild=False)]
    assert await _users(seeded) == [
        user_json(1, name="one", in_guild=False),
        user_json(2),
        user_json(3, roles=[1]),
        user_json(4),
        user_json(5),
    ]
    assert site.stats.largest_bulk_patch == 2


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b'{"id": 1}', {"non_field_errors": ['Expected a list of items but got type "dict".']}),
        (b'"abc"', {"non_field_errors": ['Expected a list of items but got type "str".']}),
        (b"null", {"non_field_errors": ["No data provided"]}),
        (b"", {"non_field_errors": ['Expected a list of items but got type "dict".']}),
    ],
)
async def test_1_body_shape(seeded: Api, raw: bytes, body: dict) -> None:
    reply = await seeded.call("PATCH", PATH, raw=raw)
    assert (reply.status, reply.json) == (400, body)


async def test_1_bad_json(seeded: Api) -> None:
    reply = await seeded.call("PATCH", PATH, raw=b"[{")
    assert reply.status == 400
    assert reply.json["detail"].startswith("JSON parse error - ")


async def test_2_item_validation_beats_later_checks(seeded: Api) -> None:
    items = [{"id": 1, "name": "ok"}, {"id": 999, "discriminator": "x"}, {"id": 1}, {"name": "a"}]
    reply = await seeded.call("PATCH", PATH, items)
    assert reply.status == 400
    assert reply.json == [{}, {"discriminator": ["A valid integer is required."]}, {}, {}]
    assert await _users(seeded) == [user_json(i) for i in range(1, 6)]


async def test_2_unknown_role_is_an_item_error(seeded: Api) -> None:
    reply = await seeded.call("PATCH", PATH, [{"id": 1, "roles": [1]}, {"id": 2, "roles": [5]}])
    assert (reply.status, reply.json) == (400, [{}, {"roles": ["Role with ID 5 does not exist"]}])


async def test_3_missing_id_before_repeated_id(seeded: Api) -> None:
    reply = await seeded.call("PATCH", PATH, [{"id": 1, "name": "a"}, {"name": "b"}, {"id": 1}])
    assert (reply.status, reply.json) == (400, {"id": ["This field is required."]})


async def test_3_repeated_id_before_unknown_id(seeded: Api) -> None:
    items = [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}, {"id": 999, "name": "c"}]
    reply = await seeded.call("PATCH", PATH, items)
    assert (reply.status, reply.json) == (400, {"id": ["User with ID 1 given multiple times."]})


async def test_4_first_unknown_id_is_404_and_nothing_is_written(seeded: Api) -> None:
    items = [{"id": 2, "name": "two"}, {"id": 999999, "name": "x"}, {"id": 888, "name": "y"}]
    reply = await seeded.call("PATCH", PATH, items)
    assert (reply.status, reply.json) == (404, {"detail": "User with id 999999 not found."})
    assert await _users(seeded) == [user_json(i) for i in range(1, 6)]


async def test_4_unknown_id_beats_insufficient_data(seeded: Api) -> None:
    reply = await seeded.call("PATCH", PATH, [{"id": 1}, {"id": 77}])
    assert (reply.status, reply.json) == (404, {"detail": "User with id 77 not found."})


async def test_5_only_ids_is_insufficient_data(seeded: Api) -> None:
    reply = await seeded.call("PATCH", PATH, [{"id": 1}, {"id": 2, "unknown": 1}])
    assert (reply.status, reply.json) == (
        400,
        {"non_field_errors": ["Insufficient data provided."]},
    )


async def test_5_an_only_id_item_among_patches_is_written_back(seeded: Api) -> None:
    reply = await seeded.call("PATCH", PATH, [{"id": 1}, {"id": 2, "name": "b"}])
    assert (reply.status, reply.json) == (200, [user_json(1), user_json(2, name="b")])


async def test_6_empty_list_is_a_500_page(seeded: Api) -> None:
    reply = await seeded.call("PATCH", PATH, [])
    assert reply.status == 500
    assert reply.is_html


async def test_id_above_bigint_is_not_found_and_writes_nothing(seeded: Api) -> None:
    """Not a 500 (site-api.md, "Found by differential testing")."""
    reply = await seeded.call("PATCH", PATH, [{"id": 1, "name": "a"}, {"id": 2**63, "name": "b"}])
    assert (reply.status, reply.json) == (404, {"detail": f"User with id {2**63} not found."})
    assert await _users(seeded) == [user_json(i) for i in range(1, 6)]


async def test_large_request_is_counted(seeded: Api, site: SandboxSite) -> None:
    await seeded.ok("POST", "bot/users", [user_json(i) for i in range(100, 1100)])
    items = [{"id": i, "display_name": f"d{i}"} for i in range(100, 1100)]
    reply = await seeded.call("PATCH", PATH, items)
    assert reply.status == 200
    assert [u["display_name"] for u in reply.json] == [f"d{i}" for i in range(100, 1100)]
    assert site.stats.largest_bulk_patch == 1000
    assert site.stats.largest_request_items == 1000
    assert site.stats.by_route["PATCH /api/bot/users/bulk_patch"] == 1
