"""What every handler of the sandbox site shares: the store, the stats, the faults and the token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.sandbox.site.faults import Faults
from bot.sandbox.site.hold import Hold
from bot.sandbox.site.responses import Answer, detail, parse_json_body
from bot.sandbox.site.stats import SiteStats
from bot.sandbox.site.store import SiteStore


@dataclass(eq=False)
class SiteState:
    store: SiteStore
    stats: SiteStats
    faults: Faults
    token: str
    hold: Hold = field(default_factory=Hold)

    def __repr__(self) -> str:
        return f"SiteState(store={self.store!r}, faults={self.faults!r})"


SITE_STATE = web.AppKey("site_state", SiteState)
ROUTE = web.RequestKey("route", str)
"""The request's route as the stats name it ("METHOD /template"), set by the middleware."""


def site_state(request: web.Request) -> SiteState:
    return request.app[SITE_STATE]


async def read_json(request: web.Request) -> Any:
    """Decode the body as the site does and count it in the stats, after waiting at the hold
    gate if one is shut for this route (see hold.py)."""
    raw = await request.read()
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    data = parse_json_body(raw, content_type)
    items = len(data) if isinstance(data, list) else int(bool(raw) and data not in (None, {}))
    state, route = site_state(request), request[ROUTE]
    await state.hold.pass_through(route, state.stats.route(route).items)
    state.stats.record_body(route, items, len(raw))
    return data


def path_id(request: web.Request) -> int:
    """The `{id}` of a detail URL; a non-integer matches nothing, as on the site."""
    raw = request.match_info["id"]
    try:
        return int(raw)
    except ValueError:
        raise Answer(detail(404, "Not found.")) from None
