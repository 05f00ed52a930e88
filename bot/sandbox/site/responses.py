"""The site's wire format: DRF's compact JSON, Django's HTML error pages, and early answers.

Django answers 404s and 500s with an HTML page, not JSON; the bot's client must cope with that, so
the sandbox sends the same pages.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

NOT_FOUND_PAGE = (
    '<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n'
    "  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n"
    "</body>\n</html>\n"
)
SERVER_ERROR_PAGE = (
    '<!doctype html>\n<html lang="en">\n<head>\n  <title>Server Error (500)</title>\n</head>\n'
    "<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n"
)


class Answer(Exception):
    """Stop handling a request and send `response` (a lookup miss, a bad body, a 500)."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__(response.status)
        self.response = response


class SiteCrash(Exception):
    """Where the real site fails with an exception (an id its database cannot store, the empty
    bulk_patch): the sandbox answers with the same 500 page."""


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_text_response(body: str, status: int = 200, **headers: str) -> web.Response:
    return web.Response(
        body=body.encode(), status=status, content_type="application/json", headers=headers
    )


def json_response(data: Any, status: int = 200, **headers: str) -> web.Response:
    return json_text_response(dumps(data), status, **headers)


def detail(status: int, message: str, **headers: str) -> web.Response:
    return json_response({"detail": message}, status, **headers)


def field_errors(errors: Any) -> Answer:
    return Answer(json_response(errors, 400))


def non_field_error(message: str) -> Answer:
    return field_errors({"non_field_errors": [message]})


def not_found_page() -> web.Response:
    return web.Response(text=NOT_FOUND_PAGE, status=404, content_type="text/html")


def server_error_page() -> web.Response:
    return web.Response(text=SERVER_ERROR_PAGE, status=500, content_type="text/html")


def no_content() -> web.Response:
    return web.Response(status=204)


def parse_json_body(raw: bytes, content_type: str) -> Any:
    """The request's data as DRF sees it: {} for an empty body, 415/400 for unreadable ones."""
    if not raw:
        return {}
    if content_type != "application/json":
        raise Answer(detail(415, f'Unsupported media type "{content_type}" in request.'))
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except ValueError as error:
        raise Answer(detail(400, f"JSON parse error - {error}")) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"Out of range float values are not JSON compliant: {name!r}")
