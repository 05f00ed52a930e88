"""What every handler of the sandbox site shares: the store, the stats, the faults, the token and
the cost model's workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.sandbox.site.cost import CostModel, Work, WorkerKilled
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
    cost: CostModel = field(default_factory=CostModel)

    def __repr__(self) -> str:
        return f"SiteState(store={self.store!r}, faults={self.faults!r})"


SITE_STATE = web.AppKey("site_state", SiteState)
ROUTE = web.RequestKey("route", str)
"""The request's route as the stats name it ("METHOD /template"), set by the middleware."""
CHARGED = web.RequestKey("charged", bool)
"""Set once the request has been served its modelled cost (see `spend`)."""


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


async def spend(request: web.Request, work: Work) -> None:
    """Serve the request's modelled cost on one of the site's workers (cost.py) before the
    handler applies it: queued while every worker is busy, then its modelled time. A request
    spends once; the middleware charges the fixed cost to one whose handler did not.
    Raises WorkerKilled when it took the site past its memory limit (nothing is applied)."""
    state = site_state(request)
    request[CHARGED] = True
    try:
        seconds = await state.cost.serve(work)
    except WorkerKilled as killed:
        state.stats.record_cpu(request[ROUTE], killed.cpu_s)
        state.stats.record_oom(request[ROUTE])
        raise
    state.stats.record_cpu(request[ROUTE], seconds)
