"""shared/site-api.md, "Found by differential testing": one test (or more) per behaviour of the
real site listed there, against the sandbox site over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from bot.sandbox.site import SandboxSite
from tests.sandbox_site.conftest import Api, role_json, user_json

BULK_PATCH = "bot/users/bulk_patch"
HUGE = 2**63
NOT_NULL = ["This field may not be null."]
BLANK = ["This field may not be blank."]


def missing(*role_ids: int) -> list[str]:
    return [f"Role with ID {role_id} does not exist" for role_id in role_ids]


async def _seed(api: Api, *users: dict[str, Any], roles: tuple[int, ...] = (1,)) -> None:
    for role_id in roles:
        await api.ok("POST", "bot/roles", role_json(role_id))
    if users:
        await api.ok("POST", "bot/users", list(users))


async def _user(api: Api, user_id: int) -> dict[str, Any]:
    user = await api.ok("GET", f"bot/users/{user_id}")
    del user["alts"]
    return user


# -- strings are trimmed -----------------------------------------------------------------------

PADDED = [" pad ", "\u3000pad\u3000", "\tpad\n", "\u00a0\u2003pad\u2029", "\x1c\x1dpad\x1e\x1f"]


@pytest.mark.parametrize("raw", PADDED)
async def test_user_strings_are_stored_stripped_on_every_write(api: Api, raw: str) -> None:
    assert raw.strip() == "pad"  # Python's str.strip(): Unicode spaces too
    await _seed(api)
    created = await api.ok("POST", "bot/users", user_json(1, name=raw, display_name=raw))
    assert (created["name"], created["display_name"]) == ("pad", "pad")
    await api.ok("POST", "bot/users", [user_json(2, name=raw, display_name=raw)])
    assert (await _user(api, 2))["name"] == "pad"
    put = await api.ok("PUT", "bot/users/1", {"id": 1, "name": f"a{raw}", "discriminator": 0})
    assert put["name"] == f"a{raw}".strip()
    patched = await api.ok("PATCH", "bot/users/1", {"display_name": f"{raw}b"})
    assert patched["display_name"] == f"{raw}b".strip()
    bulk = await api.ok("PATCH", BULK_PATCH, [{"id": 2, "name": raw, "display_name": raw}])
    assert (bulk[0]["name"], bulk[0]["display_name"]) == ("pad", "pad")
    assert [(await _user(api, i))["display_name"] for i in (1, 2)] == [f"{raw}b".strip(), "pad"]


@pytest.mark.parametrize("raw", PADDED)
async def test_role_names_are_stored_stripped(api: Api, raw: str) -> None:
    assert (await api.ok("POST", "bot/roles", role_json(1, name=raw)))["name"] == "pad"
    put = await api.ok("PUT", "bot/roles/1", role_json(1, name=raw.replace("pad", "x")))
    assert put["name"] == "x"
    assert (await api.ok("PATCH", "bot/roles/1", {"name": raw}))["name"] == "pad"
    assert (await api.ok("GET", "bot/roles/1"))["name"] == "pad"


@pytest.mark.parametrize("blank", ["", " ", "\u3000", " \t\n\u2003 "])
async def test_whitespace_only_names_are_blank(api: Api, blank: str) -> None:
    await _seed(api, user_json(1))
    reply = await api.call("POST", "bot/users", user_json(2, name=blank))
    assert (reply.status, reply.json) == (400, {"name": BLANK})
    reply = await api.call("PATCH", "bot/users/1", {"name": blank})
    assert (reply.status, reply.json) == (400, {"name": BLANK})
    reply = await api.call("PATCH", BULK_PATCH, [{"id": 1, "name": blank}])
    assert (reply.status, reply.json) == (400, [{"name": BLANK}])
    reply = await api.call("POST", "bot/roles", role_json(2, name=blank))
    assert (reply.status, reply.json) == (400, {"name": BLANK})
    reply = await api.call("PATCH", "bot/roles/1", {"name": blank})
    assert (reply.status, reply.json) == (400, {"name": BLANK})


@pytest.mark.parametrize("blank", ["", " ", "\u3000", " \t\n\u2003 "])
async def test_a_whitespace_only_display_name_is_stored_empty(api: Api, blank: str) -> None:
    await _seed(api, user_json(1))
    assert (await api.ok("POST", "bot/users", user_json(2, display_name=blank)))[
        "display_name"
    ] == ""
    assert (await api.ok("PATCH", "bot/users/1", {"display_name": blank}))["display_name"] == ""
    patched = await api.ok("PATCH", BULK_PATCH, [{"id": 2, "display_name": blank}])
    assert patched[0]["display_name"] == ""


async def test_length_limits_apply_to_the_stripped_value(api: Api) -> None:
    await _seed(api)
    user = user_json(1, name="n" * 32 + " ", display_name="\u3000" + "d" * 32 + "\u3000")
    created = await api.ok("POST", "bot/users", user)
    assert (created["name"], created["display_name"]) == ("n" * 32, "d" * 32)
    role = await api.ok("POST", "bot/roles", role_json(2, name=" " + "r" * 100 + " "))
    assert role["name"] == "r" * 100
    too_long = ["Ensure this field has no more than 32 characters."]
    reply = await api.call("POST", "bot/users", user_json(2, name=" " + "n" * 33 + " "))
    assert (reply.status, reply.json) == (400, {"name": too_long})
    reply = await api.call("POST", "bot/roles", role_json(3, name="r" * 101 + " "))
    assert (reply.status, reply.json) == (
        400,
        {"name": ["Ensure this field has no more than 100 characters."]},
    )


# -- unknown roles -------------------------------------------------------------------------------


async def test_unknown_role_messages_are_sorted_by_id_whatever_the_request_order(
    api: Api,
) -> None:
    await _seed(api, user_json(1), roles=(1, 5))
    expected = {"roles": missing(3, 17, 100)}
    for roles in ([17, 3, 100, 1], [100, 5, 17, 3], [3, 17, 100]):
        reply = await api.call("POST", "bot/users", user_json(2, roles=roles))
        assert (reply.status, reply.json) == (400, expected)
        reply = await api.call("PATCH", "bot/users/1", {"roles": roles})
        assert (reply.status, reply.json) == (400, expected)
        reply = await api.call(
            "PATCH", BULK_PATCH, [{"id": 1, "name": "a"}, {"id": 1, "roles": roles}]
        )
        assert (reply.status, reply.json) == (400, [{}, expected])
        reply = await api.call("POST", "bot/users", [user_json(3, roles=roles)])
        assert (reply.status, reply.json) == (400, [expected])


async def test_role_ids_of_2_63_or_more_in_roles_do_not_exist(api: Api) -> None:
    await _seed(api, user_json(1))
    roles = [10**30, HUGE, 1, 4]
    expected = {"roles": missing(4, HUGE, 10**30)}
    reply = await api.call("POST", "bot/users", user_json(2, roles=roles))
    assert (reply.status, reply.json) == (400, expected)
    reply = await api.call("PATCH", BULK_PATCH, [{"id": 1, "roles": roles}])
    assert (reply.status, reply.json) == (400, [expected])


# -- bulk_patch items ----------------------------------------------------------------------------


async def test_a_null_bulk_patch_item_is_an_aligned_null_error(api: Api) -> None:
    await _seed(api, user_json(1))
    reply = await api.call("PATCH", BULK_PATCH, [None])
    assert (reply.status, reply.json) == (400, [NOT_NULL])
    reply = await api.call("PATCH", BULK_PATCH, [{"id": 1, "name": "a"}, None, {"id": 1}])
    assert (reply.status, reply.json) == (400, [{}, NOT_NULL, {}])
    assert (await _user(api, 1))["name"] == "user1"


async def test_a_null_item_in_a_bulk_create_is_the_same_aligned_error(api: Api) -> None:
    """Not in the contract: the same DRF list code path as bulk_patch, so the same answer."""
    reply = await api.call("POST", "bot/users", [user_json(1), None])
    assert (reply.status, reply.json) == (400, [{}, NOT_NULL])
    assert (await api.ok("GET", "bot/users"))["count"] == 0


@pytest.mark.parametrize("huge", [HUGE, 10**30])
async def test_bulk_patch_ids_of_2_63_or_more_are_not_found(api: Api, huge: int) -> None:
    await _seed(api, user_json(1), user_json(2))
    items = [{"id": 1, "name": "a"}, {"id": huge, "name": "b"}, {"id": 999, "name": "c"}]
    reply = await api.call("PATCH", BULK_PATCH, items)
    assert (reply.status, reply.json) == (404, {"detail": f"User with id {huge} not found."})
    assert (await _user(api, 1))["name"] == "user1"  # nothing written
    reply = await api.call("PATCH", BULK_PATCH, [{"id": huge}])
    assert (reply.status, reply.json) == (404, {"detail": f"User with id {huge} not found."})


# -- single POST error order ---------------------------------------------------------------------


async def test_single_post_for_an_existing_id_reports_only_the_field_errors(api: Api) -> None:
    await _seed(api, user_json(1))
    reply = await api.call("POST", "bot/users", user_json(1, name="", discriminator=10**5))
    assert reply.status == 400
    assert reply.json == {
        "name": BLANK,
        "discriminator": ["Ensure this value is less than or equal to 9999."],
    }
    reply = await api.call("POST", "bot/users", user_json(1, roles=[9, 1]))
    assert (reply.status, reply.json) == (400, {"roles": missing(9)})
    reply = await api.call("POST", "bot/users", {"id": 1, "name": "x"})
    assert (reply.status, reply.json) == (400, {"discriminator": ["This field is required."]})
    reply = await api.call("POST", "bot/users", user_json(1, name="x"))
    assert (reply.status, reply.json) == (400, {"id": ["User with ID already present."]})
    assert (await _user(api, 1))["name"] == "user1"


# -- filters and pages ---------------------------------------------------------------------------

FILTER_USERS = [
    user_json(1, name="ann", display_name="Ann", discriminator=7),
    user_json(2, name="bob", display_name="", discriminator=0),
    user_json(3, name="ann", display_name="", discriminator=0),
    user_json(4, name="anna", display_name="Ann", discriminator=7),
    user_json(5, name="Ann", display_name="ann", discriminator=42),
]


@pytest.mark.parametrize(
    ("params", "ids"),
    [
        ({"name": "ann"}, [1, 3]),
        ({"name": "Ann"}, [5]),
        ({"name": " ann "}, [1, 3]),  # the filter's form field strips its value
        ({"name": "an"}, []),
        ({"display_name": "Ann"}, [1, 4]),
        ({"discriminator": "7"}, [1, 4]),
        ({"discriminator": "0"}, [2, 3]),
        ({"discriminator": "042"}, [5]),
        ({"discriminator": "7.0"}, [1, 4]),
        ({"discriminator": "99999999999"}, []),
        ({"name": "ann", "discriminator": "0"}, [3]),
        ({"name": "ann", "display_name": "Ann", "discriminator": "7"}, [1]),
        ({"name": ""}, [1, 2, 3, 4, 5]),  # an empty filter value filters nothing
        ({"display_name": ""}, [1, 2, 3, 4, 5]),
        ({"discriminator": ""}, [1, 2, 3, 4, 5]),
        ({"unknown": "x"}, [1, 2, 3, 4, 5]),
    ],
)
async def test_user_filters_are_exact_matches(api: Api, params: dict, ids: list[int]) -> None:
    await _seed(api, *FILTER_USERS)
    body = await api.ok("GET", "bot/users", params=params)
    assert [u["id"] for u in body["results"]] == ids
    assert body["count"] == len(ids)


async def test_filtered_results_are_paged(api: Api) -> None:
    await _seed(api, *[user_json(i, discriminator=i % 2) for i in range(1, 12)])
    odd, page = [], 1
    while page is not None:
        params = {"discriminator": 1, "page": page, "page_size": 2}
        body = await api.ok("GET", "bot/users", params=params)
        assert body["count"] == 6
        odd += [u["id"] for u in body["results"]]
        page = body["next_page_no"]
    assert odd == [1, 3, 5, 7, 9, 11]
    last = await api.ok(
        "GET", "bot/users", params={"discriminator": 1, "page": "last", "page_size": 4}
    )
    assert ([u["id"] for u in last["results"]], last["previous_page_no"]) == ([9, 11], 1)
    reply = await api.call(
        "GET", "bot/users", params={"discriminator": 1, "page": 4, "page_size": 2}
    )
    assert (reply.status, reply.json) == (404, {"detail": "Invalid page."})


@pytest.mark.parametrize("value", ["abc", "1,0", "nan", "Infinity", "0x10", "1 2"])
@pytest.mark.parametrize("page", [{}, {"page": "99"}, {"page": "x", "page_size": "-1"}])
async def test_filters_are_validated_before_the_page(api: Api, value: str, page: dict) -> None:
    await _seed(api, *FILTER_USERS)
    reply = await api.call("GET", "bot/users", params={"discriminator": value, **page})
    assert (reply.status, reply.json) == (400, {"discriminator": ["Enter a number."]})


@pytest.mark.parametrize(
    ("params", "ids"),
    [
        ({"page": "last"}, [1, 2, 3, 4, 5]),
        ({"page": "last", "page_size": "2"}, [5]),
        ({"page_size": "0"}, [1, 2, 3, 4, 5]),
        ({"page_size": "-3"}, [1, 2, 3, 4, 5]),
        ({"page_size": "two"}, [1, 2, 3, 4, 5]),
        ({"page_size": "2.0"}, [1, 2, 3, 4, 5]),
        ({"page_size": ""}, [1, 2, 3, 4, 5]),
        ({"page": "2", "page_size": "-3"}, None),  # the default size: one page only
    ],
)
async def test_page_last_and_the_page_size_fallback(
    api: Api, params: dict, ids: list[int] | None
) -> None:
    await _seed(api, *FILTER_USERS)
    reply = await api.call("GET", "bot/users", params=params)
    if ids is None:
        assert (reply.status, reply.json) == (404, {"detail": "Invalid page."})
    else:
        assert [u["id"] for u in reply.json["results"]] == ids


# -- paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["bot/users/9.0", "bot/roles/7.0", "bot/users/1.5", "bot/users/1.xml", "bot/roles.yaml"]
)
async def test_dotted_paths_are_json_not_found(api: Api, path: str) -> None:
    await _seed(api, user_json(9), roles=(7,))
    for method in ("GET", "PATCH", "DELETE"):
        reply = await api.call(method, path, {"name": "x"} if method == "PATCH" else None)
        assert (reply.status, reply.json) == (404, {"detail": "Not found."}), method
    # DRF picks the renderer (404 for an unknown format) before it authenticates.
    reply = await api.call("GET", path, headers={"Authorization": "Token wrong"})
    assert (reply.status, reply.json) == (404, {"detail": "Not found."})
    assert (await _user(api, 9))["name"] == "user9"


async def test_the_json_format_suffix_works(api: Api, site: SandboxSite) -> None:
    await _seed(api, user_json(1), roles=(7,))
    assert await api.ok("GET", "bot/roles.json") == [role_json(7)]
    assert await api.ok("GET", "bot/roles/7.json") == role_json(7)
    assert await api.ok("GET", "bot/users/1.json") == {**user_json(1), "alts": []}
    assert (await api.ok("GET", "bot/users.json", params={"page": 1}))["count"] == 1
    assert (await api.ok("PATCH", "bot/users/1.json", {"name": "b"}))["name"] == "b"
    patched = await api.ok("PATCH", "bot/users/bulk_patch.json", [{"id": 1, "name": "c"}])
    assert patched[0]["name"] == "c"
    assert await api.ok("GET", "bot/users/1.json/") == {**user_json(1, name="c"), "alts": []}
    reply = await api.call("GET", "bot/users/2.json")
    assert (reply.status, reply.json) == (404, {"detail": "No User matches the given query."})
    reply = await api.call("PUT", "bot/roles.json")
    assert (reply.status, reply.json) == (405, {"detail": 'Method "PUT" not allowed.'})
    # The suffixed paths count under their route, so the stats, holds and drops see them.
    assert site.stats.by_route["GET /api/bot/users/{id}"] == 3
    assert site.stats.by_route["PATCH /api/bot/users/bulk_patch"] == 1


async def test_the_format_query_parameter_is_negotiated_too(api: Api) -> None:
    """DRF's URL_FORMAT_OVERRIDE: `?format=` when the path has no suffix (not in the contract)."""
    await _seed(api, user_json(1))
    assert (await api.ok("GET", "bot/users", params={"format": "json"}))["count"] == 1
    reply = await api.call("GET", "bot/users", params={"format": "xml"})
    assert (reply.status, reply.json) == (404, {"detail": "Not found."})
    reply = await api.call("GET", "bot/roles?format=json&format=csv")
    assert (reply.status, reply.json) == (404, {"detail": "Not found."})  # the last value
    assert (await api.ok("GET", "bot/users/1.json", params={"format": "xml"}))["id"] == 1


@pytest.mark.parametrize(
    "path", ["bot/users/1.JSON", "bot/users/1.json.json", "bot/users/1.", "healthcheck.json"]
)
async def test_other_suffixes_are_html_404(api: Api, path: str) -> None:
    reply = await api.call("GET", path)
    assert (reply.status, reply.is_html) == (404, True)


# -- a body id different from the URL's ----------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_a_user_body_id_that_is_free_writes_a_new_row(api: Api, method: str) -> None:
    await _seed(api, user_json(1, roles=[1], in_guild=False))
    body = {"id": 2, "name": "new", "discriminator": 5}
    written = await api.ok(method, "bot/users/1", body)
    expected = user_json(2, name="new", display_name="User 1", discriminator=5, roles=[1])
    assert written == {**expected, "in_guild": False}  # unsent fields from the URL's row
    assert await _user(api, 2) == written
    assert await _user(api, 1) == user_json(1, roles=[1], in_guild=False)  # unchanged
    assert (await api.ok("GET", "bot/users"))["count"] == 2


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_a_user_body_id_that_exists_overwrites_that_user(api: Api, method: str) -> None:
    await _seed(api, user_json(1, roles=[1], in_guild=False), user_json(2, display_name="two"))
    written = await api.ok(method, "bot/users/1", {"id": 2, "name": "over", "discriminator": 3})
    expected = user_json(2, name="over", display_name="User 1", discriminator=3, roles=[1])
    assert written == {**expected, "in_guild": False}  # unsent fields from the URL's row
    assert await _user(api, 2) == written
    assert await _user(api, 1) == user_json(1, roles=[1], in_guild=False)
    assert (await api.ok("GET", "bot/users"))["count"] == 2


async def test_a_user_body_id_above_bigint_is_500(api: Api) -> None:
    await _seed(api, user_json(1))
    reply = await api.call("PATCH", "bot/users/1", {"id": HUGE})
    assert (reply.status, reply.is_html) == (500, True)
    assert (await api.ok("GET", "bot/users"))["count"] == 1


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_a_role_body_id_that_is_free_writes_a_new_row(api: Api, method: str) -> None:
    await _seed(api, roles=(1,))
    written = await api.ok(method, "bot/roles/1", role_json(2, 4, name="copy"))
    assert written == role_json(2, 4, name="copy")
    assert await api.ok("GET", "bot/roles") == [role_json(2, 4, name="copy"), role_json(1)]
    # the new role is a role: users may hold it
    await api.ok("POST", "bot/users", user_json(1, roles=[2]))


async def test_a_role_patch_with_only_a_new_id_copies_the_row(api: Api) -> None:
    await _seed(api, roles=())
    await api.ok("POST", "bot/roles", role_json(1, 3, colour=9))
    assert await api.ok("PATCH", "bot/roles/1", {"id": 5}) == role_json(
        5, 3, colour=9, name="role 1"
    )
    assert await api.ok("GET", "bot/roles/1") == role_json(1, 3, colour=9)


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_a_role_body_id_that_exists_is_400(api: Api, method: str) -> None:
    await _seed(api, roles=(1, 2))
    reply = await api.call(method, "bot/roles/1", role_json(2, 9))
    assert (reply.status, reply.json) == (400, {"id": ["role with this ID already exists."]})
    reply = await api.call(method, "bot/roles/1", role_json(2, 9, name=" "))
    assert reply.json == {"id": ["role with this ID already exists."], "name": BLANK}
    assert await api.ok("GET", "bot/roles") == [role_json(1), role_json(2)]
    assert (await api.ok(method, "bot/roles/1", role_json(1, 9)))["position"] == 9  # own id


# -- duplicate role ids --------------------------------------------------------------------------


async def test_duplicate_role_ids_are_stored_and_a_delete_removes_one(api: Api) -> None:
    await _seed(api, roles=(1, 2))
    await api.ok("POST", "bot/users", user_json(1, roles=[2, 1, 2, 1, 2]))
    await api.ok("POST", "bot/users", [user_json(2, roles=[1, 1])])
    await api.ok("PATCH", BULK_PATCH, [{"id": 2, "roles": [1, 2, 1]}])
    assert (await _user(api, 1))["roles"] == [2, 1, 2, 1, 2]
    assert (await _user(api, 2))["roles"] == [1, 2, 1]
    await api.ok("DELETE", "bot/roles/2")
    assert (await _user(api, 1))["roles"] == [1, 2, 1, 2]  # only the first occurrence goes
    assert (await _user(api, 2))["roles"] == [1, 1]
    await api.ok("DELETE", "bot/roles/1")
    assert (await _user(api, 1))["roles"] == [2, 1, 2]
    assert (await _user(api, 2))["roles"] == [1]


# -- in_guild ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        *[
            (text, True)
            for text in ["yes", "Yes", "YES", "y", "t", "true", "True", "on", "ON", "1"]
        ],
        *[(text, False) for text in ["no", "NO", "n", "F", "false", "FALSE", "off", "Off", "0"]],
        (1, True),
        (0, False),
        (1.0, True),
        (0.0, False),
        (True, True),
        (False, False),
    ],
)
async def test_in_guild_is_parsed_like_drf(api: Api, raw: Any, value: bool) -> None:
    await _seed(api, user_json(1))
    assert (await api.ok("POST", "bot/users", user_json(2, in_guild=raw)))["in_guild"] is value
    patched = await api.ok("PATCH", BULK_PATCH, [{"id": 1, "in_guild": raw}])
    assert patched[0]["in_guild"] is value


@pytest.mark.parametrize("raw", ["2", "yes ", "oui", "", "null", 2, 0.5, [], {}])
async def test_in_guild_rejects_other_values(api: Api, raw: Any) -> None:
    reply = await api.call("POST", "bot/users", user_json(1, in_guild=raw))
    assert (reply.status, reply.json) == (400, {"in_guild": ["Must be a valid boolean."]})


# -- roles with equal position -------------------------------------------------------------------


async def test_roles_with_equal_position_come_in_the_sandbox_s_order(api: Api) -> None:
    """The site gives no order to ties; the sandbox breaks them by id, ascending (app.py)."""
    for role_id, position in [(30, 1), (4, 2), (10, 1), (2, 1), (7, 2)]:
        await api.ok("POST", "bot/roles", role_json(role_id, position))
    assert [r["id"] for r in await api.ok("GET", "bot/roles")] == [4, 7, 2, 10, 30]
