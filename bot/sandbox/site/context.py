"""What every handler of the sandbox site shares: the store, the stats, the faults and the token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.sandbox.site.faults import Faults
from bot.sandbox.site.responses import Answer, detail, parse_json_body
from bot.sandbox.site.stats import SiteStats
from bot.sandbox.site.store import SiteStore


@dataclass(eq=False)
class SiteState:
    store: SiteStore
    stats: SiteStats
    faults: Faults
    token: str

    def __repr__(self) -> str:
        return f"SiteState(store={self.store!r}, faults={self.faults!r})"


SITE_STATE = web.AppKey("site_state", SiteState)


def site_state(request: web.Request) -> SiteState:
    return request.app[SITE_STATE]


async def read_json(request: web.Request) -> Any:
    """Decode the body as the site does and count its size in the stats."""
    raw = await request.read()
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    data = parse_json_body(raw, content_type)
    items = len(data) if isinstance(data, list) else 1
    site_state(request).stats.record_body(items, len(raw))
    return data


def path_id(request: web.Request) -> int:
    """The `{id}` of a detail URL; a non-integer matches nothing, as on the site."""
    raw = request.match_info["id"]
    try:
        return int(raw)
    except ValueError:
        raise Answer(detail(404, "Not found.")) from None
