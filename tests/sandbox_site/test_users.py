"""`bot/users`: pages, detail endpoints, single and bulk create, and the validation bodies."""

from __future__ import annotations

import pytest

from bot.sandbox.site import SandboxSite
from tests.sandbox_site.conftest import Api, role_json, user_json


async def _create(api: Api, *user_ids: int) -> None:
    await api.ok("POST", "bot/users", [user_json(user_id) for user_id in user_ids])


async def test_pages_in_id_order_with_links(api: Api) -> None:
    ids = [50, 3, 7, 1, 99, 12, 8]
    await _create(api, *ids)
    seen, page = [], 1
    while page is not None:
        body = await api.ok("GET", "bot/users", params={"page": page, "page_size": 3})
        assert body["count"] == 7
        assert body["previous_page_no"] == (page - 1 if page > 1 else None)
        seen += [u["id"] for u in body["results"]]
        page = body["next_page_no"]
    assert seen == sorted(ids)
    assert body["results"] == [user_json(99)]


async def test_pages_stay_correct_after_inserts_and_deletes(api: Api) -> None:
    await _create(api, *range(10, 20))
    for page, expected in [(1, [10, 11, 12, 13]), (2, [14, 15, 16, 17])]:
        body = await api.ok("GET", "bot/users", params={"page": page, "page_size": 4})
        assert [u["id"] for u in body["results"]] == expected
    await _create(api, 1, 2)
    await api.ok("DELETE", "bot/users/15")
    second = await api.ok("GET", "bot/users", params={"page": 2, "page_size": 4})
    assert [u["id"] for u in second["results"]] == [12, 13, 14, 16]
    third = await api.ok("GET", "bot/users", params={"page": 3, "page_size": 4})
    assert [u["id"] for u in third["results"]] == [17, 18, 19]
    assert third["count"] == 11


@pytest.mark.parametrize(
    ("params", "expected_ids"),
    [
        ({}, list(range(1, 6))),
        ({"page_size": "0"}, list(range(1, 6))),
        ({"page_size": "abc"}, list(range(1, 6))),
        ({"page": "last", "page_size": 2}, [5]),
        ({"page": "", "page_size": 2}, [1, 2]),
    ],
)
async def test_page_parameters(api: Api, params: dict, expected_ids: list[int]) -> None:
    await _create(api, *range(1, 6))
    body = await api.ok("GET", "bot/users", params=params)
    assert [u["id"] for u in body["results"]] == expected_ids


@pytest.mark.parametrize("page", ["0", "4", "-1", "two", "1.0"])
async def test_out_of_range_page_is_404(api: Api, page: str) -> None:
    await _create(api, *range(1, 6))
    reply = await api.call("GET", "bot/users", params={"page": page, "page_size": 2})
    assert (reply.status, reply.json) == (404, {"detail": "Invalid page."})


async def test_empty_table_has_one_empty_page(api: Api) -> None:
    body = await api.ok("GET", "bot/users")
    assert body == {"count": 0, "next_page_no": None, "previous_page_no": None, "results": []}
    assert (await api.call("GET", "bot/users", params={"page": 2})).status == 404


async def test_get_user_adds_alts(api: Api) -> None:
    await _create(api, 5)
    assert await api.ok("GET", "bot/users/5") == {**user_json(5), "alts": []}
    reply = await api.call("GET", "bot/users/6")
    assert (reply.status, reply.json) == (404, {"detail": "No User matches the given query."})


async def test_post_one_returns_the_full_object(api: Api) -> None:
    reply = await api.call("POST", "bot/users", {"id": "0042", "name": "ann", "discriminator": 4.0})
    assert reply.status == 201
    expected = {"id": 42, "name": "ann", "display_name": "", "discriminator": 4}
    assert reply.json == {**expected, "roles": [], "in_guild": True}
    reply = await api.call("POST", "bot/users", user_json(42))
    assert (reply.status, reply.json) == (400, {"id": ["User with ID already present."]})


async def test_post_list_skips_existing_ids_without_updating(api: Api) -> None:
    await api.ok("POST", "bot/users", user_json(1, name="original"))
    reply = await api.call("POST", "bot/users", [user_json(1, name="changed"), user_json(2)])
    assert (reply.status, reply.json) == (201, [])
    assert (await api.ok("GET", "bot/users/1"))["name"] == "original"
    assert (await api.ok("GET", "bot/users/2"))["name"] == "user2"


async def test_post_empty_list_is_201(api: Api) -> None:
    reply = await api.call("POST", "bot/users", [])
    assert (reply.status, reply.json) == (201, [])


async def test_post_list_with_duplicate_ids_is_400_and_writes_nothing(api: Api) -> None:
    reply = await api.call("POST", "bot/users", [user_json(3), user_json(16), user_json(16)])
    assert (reply.status, reply.json) == (400, {"id": ["User with ID 16 given multiple times."]})
    assert (await api.ok("GET", "bot/users"))["count"] == 0


async def test_post_list_errors_are_aligned_with_the_items(api: Api) -> None:
    await api.ok("POST", "bot/roles", role_json(1))
    items = [
        user_json(1, roles=[1]),
        {"id": 2, "discriminator": 1},
        user_json(3, roles=[5, 1, 6, 5]),
        "nope",
    ]
    reply = await api.call("POST", "bot/users", items)
    assert reply.status == 400
    assert reply.json == [
        {},
        {"name": ["This field is required."]},
        {"roles": ["Role with ID 5 does not exist", "Role with ID 6 does not exist"]},
        {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]},
    ]
    assert (await api.ok("GET", "bot/users"))["count"] == 0


async def test_post_null_body(api: Api) -> None:
    reply = await api.call("POST", "bot/users", raw=b"null")
    assert (reply.status, reply.json) == (400, {"non_field_errors": ["No data provided"]})


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"id": -1}, {"id": ["Ensure this value is greater than or equal to 0."]}),
        ({"id": "x"}, {"id": ["A valid integer is required."]}),
        ({"name": ""}, {"name": ["This field may not be blank."]}),
        ({"name": "   "}, {"name": ["This field may not be blank."]}),
        ({"name": "n" * 33}, {"name": ["Ensure this field has no more than 32 characters."]}),
        ({"name": ["a"]}, {"name": ["Not a valid string."]}),
        ({"display_name": None}, {"display_name": ["This field may not be null."]}),
        (
            {"display_name": "d" * 33},
            {"display_name": ["Ensure this field has no more than 32 characters."]},
        ),
        (
            {"discriminator": 10000},
            {"discriminator": ["Ensure this value is less than or equal to 9999."]},
        ),
        (
            {"discriminator": -1},
            {"discriminator": ["Ensure this value is greater than or equal to 0."]},
        ),
        ({"discriminator": 4.5}, {"discriminator": ["A valid integer is required."]}),
        ({"discriminator": True}, {"discriminator": ["A valid integer is required."]}),
        ({"discriminator": "1" * 1001}, {"discriminator": ["String value too large."]}),
        ({"roles": "1"}, {"roles": ['Expected a list of items but got type "str".']}),
        ({"roles": [1, "x"]}, {"roles": {"1": ["A valid integer is required."]}}),
        ({"roles": [5]}, {"roles": ["Role with ID 5 does not exist"]}),
        ({"in_guild": "maybe"}, {"in_guild": ["Must be a valid boolean."]}),
        ({"in_guild": None}, {"in_guild": ["This field may not be null."]}),
    ],
)
async def test_user_validation(api: Api, changes: dict, errors: dict) -> None:
    await api.ok("POST", "bot/roles", role_json(1))
    reply = await api.call("POST", "bot/users", user_json(1, **changes))
    assert (reply.status, reply.json) == (400, errors)


@pytest.mark.parametrize(
    ("changes", "stored"),
    [
        ({"discriminator": "0042"}, {"discriminator": 42}),
        ({"discriminator": 4.0}, {"discriminator": 4}),
        ({"discriminator": "7.00"}, {"discriminator": 7}),
        ({"name": 123}, {"name": "123"}),
        ({"name": "  padded  "}, {"name": "padded"}),
        ({"display_name": ""}, {"display_name": ""}),
        ({"in_guild": "false"}, {"in_guild": False}),
        ({"in_guild": 0}, {"in_guild": False}),
        ({"roles": ["1", 1.0]}, {"roles": [1, 1]}),
        ({"unknown": "ignored"}, {}),
    ],
)
async def test_user_values_are_coerced_like_drf(api: Api, changes: dict, stored: dict) -> None:
    await api.ok("POST", "bot/roles", role_json(1))
    created = await api.ok("POST", "bot/users", user_json(1, **changes))
    expected = {**user_json(1), **stored}
    assert created == expected
    assert await api.ok("GET", "bot/users/1") == {**expected, "alts": []}


async def test_id_above_bigint_is_500_everywhere(api: Api) -> None:
    huge = 2**63
    assert (await api.call("POST", "bot/users", user_json(huge))).status == 500
    assert (await api.call("POST", "bot/users", [user_json(1), user_json(huge)])).status == 500
    assert (await api.ok("GET", "bot/users"))["count"] == 0
    assert (await api.call("GET", f"bot/users/{huge}")).status == 404


async def test_put_requires_id_name_discriminator_and_keeps_the_rest(api: Api) -> None:
    await api.ok("POST", "bot/roles", role_json(1))
    await api.ok("POST", "bot/users", user_json(1, roles=[1], in_guild=False))
    reply = await api.call("PUT", "bot/users/1", {"display_name": "x"})
    assert reply.status == 400
    assert reply.json == {
        "id": ["This field is required."],
        "name": ["This field is required."],
        "discriminator": ["This field is required."],
    }
    updated = await api.ok("PUT", "bot/users/1", {"id": 1, "name": "new", "discriminator": 9})
    assert updated == user_json(1, name="new", discriminator=9, roles=[1], in_guild=False)
    assert (await api.call("PUT", "bot/users/2", user_json(2))).status == 404


async def test_patch_and_delete(api: Api, site: SandboxSite) -> None:
    await _create(api, 1)
    assert await api.ok("PATCH", "bot/users/1", {"in_guild": False}) == user_json(1, in_guild=False)
    reply = await api.call("PATCH", "bot/users/1", {"name": ""})
    assert (reply.status, reply.json) == (400, {"name": ["This field may not be blank."]})
    assert (await api.call("PATCH", "bot/users/9", {"name": "a"})).status == 404
    assert (await api.call("DELETE", "bot/users/1")).status == 204
    reply = await api.call("DELETE", "bot/users/1")
    assert (reply.status, reply.json) == (404, {"detail": "No User matches the given query."})
    assert site.store.count_users() == 0
