"""Transport rules of the site: token auth, HTML 404s, DRF's 405 and body parsing errors."""

from __future__ import annotations

import pytest

from tests.sandbox_site.conftest import Api, user_json


async def test_healthcheck_needs_no_token(api: Api) -> None:
    reply = await api.call("GET", "healthcheck", headers={"Authorization": ""})
    assert (reply.status, reply.json) == (200, {"status": "ok"})


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Authentication credentials were not provided."),
        ("Bearer abc", "Authentication credentials were not provided."),
        ("Token wrong", "Invalid token."),
        ("Token", "Invalid token header. No credentials provided."),
        ("Token a b", "Invalid token header. Token string should not contain spaces."),
    ],
)
async def test_token_auth_failures(api: Api, authorization: str | None, message: str) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    reply = await api.session.get(f"{api.base_url}/bot/users", headers=headers)
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == "Token"
    assert reply.headers["Content-Type"] == "application/json"
    assert await reply.json() == {"detail": message}


async def test_token_keyword_is_case_insensitive(api: Api) -> None:
    from bot.sandbox.site import DEFAULT_TOKEN

    reply = await api.call("GET", "bot/roles", headers={"Authorization": f"tOKEN {DEFAULT_TOKEN}"})
    assert (reply.status, reply.json) == (200, [])


async def test_auth_is_checked_before_the_method(api: Api) -> None:
    reply = await api.call("PUT", "bot/users", headers={"Authorization": "Token nope"})
    assert (reply.status, reply.json) == (401, {"detail": "Invalid token."})


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "bot/users"),
        ("DELETE", "bot/roles"),
        ("POST", "bot/users/1"),
        ("GET", "bot/users/bulk_patch"),
        ("PUT", "bot/users/bulk_patch"),
        ("POST", "bot/users/bulk_patch"),
    ],
)
async def test_wrong_method_is_405_with_drf_body(api: Api, method: str, path: str) -> None:
    reply = await api.call(method, path)
    assert reply.status == 405
    assert reply.json == {"detail": f'Method "{method}" not allowed.'}


@pytest.mark.parametrize(
    "path", ["bot/users/", "bot/roles/", "bot/users/1/", "bot/nothing", "bot/users/1.5.0", "x"]
)
async def test_unknown_paths_are_html_404(api: Api, path: str) -> None:
    """("bot/users/1.5" is a format suffix, a JSON 404: test_differential_findings.py.)"""
    reply = await api.call("GET", path)
    assert reply.status == 404
    assert reply.is_html
    assert "<h1>Not Found</h1>" in reply.text


async def test_bad_json_is_400_parse_error(api: Api) -> None:
    reply = await api.call("POST", "bot/users", raw=b'{"id": 1,')
    assert reply.status == 400
    assert reply.json["detail"].startswith("JSON parse error - ")


async def test_nan_is_not_json(api: Api) -> None:
    reply = await api.call("PATCH", "bot/users/bulk_patch", raw=b'[{"id": NaN}]')
    assert reply.status == 400
    assert reply.json["detail"].startswith("JSON parse error - Out of range float values")


async def test_body_that_is_not_json_is_415(api: Api) -> None:
    reply = await api.call("POST", "bot/users", raw=b"id=1", headers={"Content-Type": "text/plain"})
    assert reply.status == 415
    assert reply.json == {"detail": 'Unsupported media type "text/plain" in request.'}


async def test_server_errors_are_html_pages(api: Api) -> None:
    reply = await api.call("POST", "bot/users", user_json(2**63))
    assert reply.status == 500
    assert reply.is_html
    assert "Server Error (500)" in reply.text


async def test_stats_endpoint_needs_the_token(api: Api) -> None:
    reply = await api.call("GET", "_sandbox/stats", headers={"Authorization": "Token x"})
    assert reply.status == 401
    assert (await api.call("GET", "_sandbox/stats")).status == 200
