"""The sandbox site: an aiohttp app that answers like the community website's users/roles API.

It follows shared/site-api.md request for request (statuses, bodies, the order of the
bulk_patch checks, the HTML 404 and 500 pages, DRF's token auth and 405 bodies), so the bot's
client, engine and scenarios are tested against the behaviour they will meet in production.

Where the sandbox differs from the real site, on purpose or for lack of need. None of these
changes the answer to a request the bot makes: `GET healthcheck`; `GET bot/roles`, role POST, GET,
PUT and DELETE by id (a PUT's body id is the URL's); unfiltered `GET bot/users?page=N&page_size=M`,
`GET bot/users/{id}`, bulk create and bulk_patch, each user's `roles` without repeats; aiohttp's
default `Accept: */*` and no format. (The first three are about cost and timing, which the cost
model and the faults model instead.)
- Cost: by default (`CostConfig(model="none")`, the site's and every test's default) none: a
  1,000-user bulk_patch takes milliseconds, not a second. With `model="real"` (cost.py; the demo
  and the scenarios that show a moderator's view) each request waits its modelled time on one of
  N workers (queued while all are busy) before it is applied, as fitted to site-api.md's
  measurements: per item, more for items with a non-empty `roles`, superlinear past a few
  thousand items, page reads, creates; no connection set-up cost. Memory is an account, not an
  allocation (`site_memory_mib`), and a request past `memory_limit_mib` dies as an OOM-killed
  worker: connection closed without an answer (or 502), nothing written; the real site did not
  survive to answer at all. Writes are modelled as served before they are applied, except a role
  deletion's cascade (served after it, holding no memory). cost.py lists that model's own
  limits. The `slow` fault still adds a fixed delay on top.
- Atomicity: a bulk_patch is written in one SQLite transaction (the site's single UPDATE is atomic
  too, but it runs without a transaction or row locks around the preceding SELECT).
- Concurrency: one process, one event loop, one SQLite connection; requests run one at a time
  between awaits. Without a cost model they take no time, so in-flight requests overlap only their
  waits; with one, N modelled workers serve one request each (cost.py).
- Roles with equal `position`: the site returns them in no defined order; the sandbox breaks ties
  by id, ascending (ORDER BY position DESC, id), so that its tests are repeatable. A client must
  not rely on the order of ties (the bot compares roles by id).
- Format negotiation: `.json` suffixes (DRF's format_suffix_patterns, a trailing slash allowed
  after them) and `?format=json` are served; any other format is a JSON 404 "Not found." before
  authentication, as on the site, except the browsable API's `api` (an HTML page on the site, a
  404 here). The `Accept` header is not negotiated (the site answers `text/html` with the
  browsable API and an Accept it cannot satisfy with 406), and `healthcheck` ignores `format`.
  Reason: the bot sends no format and accepts anything.
- Filters of `GET bot/users` (`name`, `display_name`, `discriminator`): the contract's exact
  matches and "Enter a number." are as observed; the finer parsing follows django-filter's form
  fields as read, not observed: values are stripped and an empty one filters nothing, the
  discriminator is a decimal cut to an integer ("7.9" matches 7), a repeated parameter counts
  its last value (also for `page` and `page_size`). Reason: the bot never filters.
- Unknown roles in `roles`: sorted by id as on the site; an unknown id given twice is listed once
  (not observed on the site). A negative id in `roles` gets DRF's range error for its index,
  `{"roles": {"0": ["Ensure this value is greater than or equal to 0."]}}` (not observed: the
  site might say "does not exist", as it does for ids of 2**63 or more). Reason: the bot sends
  each Discord id (positive) once.
- A `null` item in a bulk create (POST of a list) gets bulk_patch's observed answer, an aligned
  `["This field may not be null."]` (the same DRF code path; only bulk_patch was observed).
  Reason: the bot never sends a null item.
- Routes the bot does not use are not modelled and answer the HTML 404 page: the router's API
  root (`bot/`), the users' `alts` and metricity routes, every other `bot/` resource. `OPTIONS`
  (DRF's metadata) is not modelled: 405. HEAD is answered like GET.
- The "only id" rule of bulk_patch applies when no item carries another field (the site computes the
  union of fields sent); a mix of only-id items and real patches succeeds, as on the site.
- Faults (see faults.py) are the sandbox's own: its 429 carries `Retry-After` in (possibly
  fractional) seconds as configured, and a dropped connection is closed after the request was
  applied, so the client cannot know whether its write landed.
- Extras that the site does not have: private `GET /api/_sandbox/stats`, `GET|POST
  /api/_sandbox/faults` and `GET|POST|DELETE /api/_sandbox/hold` (a gate that holds a route's
  requests at a chosen point, hold.py; all three need the token and are left out of the stats
  and of fault injection), fault injection on `/api/bot/...` requests only (never on the
  health check), and a count of the requests the site would take otherwise than a client
  means them (a body id other than the URL's, a role id twice in `roles`: the stats'
  `misreadable_requests`), which the site answers as the real one does.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from bot.sandbox.site import roles, users
from bot.sandbox.site.context import CHARGED, ROUTE, SITE_STATE, SiteState, site_state, spend
from bot.sandbox.site.cost import WorkerKilled, request_work
from bot.sandbox.site.faults import Fault, Malformed
from bot.sandbox.site.hold import MAX_HOLD_S
from bot.sandbox.site.responses import (
    Answer,
    SiteCrash,
    detail,
    json_response,
    not_found_page,
    parse_json_body,
    server_error_page,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_PREFIX = "/api"
_FAULTABLE_PREFIX = f"{API_PREFIX}/bot/"
_CONTROL_PREFIX = f"{API_PREFIX}/_sandbox/"
_USER_PAGES = f"{API_PREFIX}/bot/users"
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BAD_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n"
    "</html>\r\n"
)
"""A proxy's answer when the worker behind it died (`oom_answer="502"`)."""
# Request bodies far above the bot's chunks must still arrive: they are what a test of the
# "80,000 users in one request" outage sends.
MAX_REQUEST_BYTES = 1 << 30


def _unauthorized(message: str) -> web.Response:
    return detail(401, message, **{"WWW-Authenticate": "Token"})


def _authentication_failure(request: web.Request, token: str) -> web.Response | None:
    """DRF's TokenAuthentication, including its three distinct 401 bodies."""
    header = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    parts = header.split()
    if not parts or parts[0].lower() != b"token":
        return _unauthorized("Authentication credentials were not provided.")
    if len(parts) == 1:
        return _unauthorized("Invalid token header. No credentials provided.")
    if len(parts) > 2:
        return _unauthorized("Invalid token header. Token string should not contain spaces.")
    try:
        key = parts[1].decode()
    except UnicodeError:
        return _unauthorized(
            "Invalid token header. Token string should not contain invalid characters."
        )
    if not hmac.compare_digest(key.encode(), token.encode()):
        return _unauthorized("Invalid token.")
    return None


def _unknown_format(request: web.Request) -> bool:
    """DRF's content negotiation by URL: a `.fmt` suffix, else a `format` query parameter (its
    last value); a format with no renderer (anything but json) is a 404 "Not found."."""
    suffix = request.match_info.get("format", "").rstrip("/")
    values = request.query.getall("format", [])
    wanted = suffix or (values[-1] if values else "")
    return bool(wanted) and wanted != "json"


def _endpoint(
    methods: Mapping[str, Handler], *, public: bool = False, negotiated: bool = False
) -> Handler:
    """One URL, in DRF's order: the format (`negotiated` routes only), then authentication
    (so 401 beats 405), then the method."""
    allowed = ", ".join([*methods, "HEAD"] if "GET" in methods else methods)

    async def dispatch(request: web.Request) -> web.StreamResponse:
        if negotiated and _unknown_format(request):
            return detail(404, "Not found.")
        if not public:
            failure = _authentication_failure(request, site_state(request).token)
            if failure is not None:
                return failure
        handler = methods.get("GET" if request.method == "HEAD" else request.method)
        if handler is None:
            return detail(405, f'Method "{request.method}" not allowed.', Allow=allowed)
        return await handler(request)

    return dispatch


async def _healthcheck(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _get_stats(request: web.Request) -> web.Response:
    state = site_state(request)
    return json_response({**state.stats.snapshot(), **state.cost.snapshot()})


async def _get_faults(request: web.Request) -> web.Response:
    return json_response(site_state(request).faults.config.to_json())


async def _set_faults(request: web.Request) -> web.Response:
    """Change some fault settings; the random stream restarts only when `seed` is given."""
    changes = await _control_json(request)
    if not isinstance(changes, dict):
        return detail(400, "Expected a JSON object of fault settings.")
    faults = site_state(request).faults
    try:
        config = faults.config.updated(changes)
    except (TypeError, ValueError) as error:
        return detail(400, str(error))
    faults.configure(config, reseed="seed" in changes)
    return json_response(config.to_json())


async def _control_json(request: web.Request) -> Any:
    """A control endpoint's body: parsed like the site's, but neither counted nor held."""
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return parse_json_body(await request.read(), content_type)


async def _get_hold(request: web.Request) -> web.Response:
    return json_response(site_state(request).hold.to_json())


async def _arm_hold(request: web.Request) -> web.Response:
    """Shut a gate on one route once it has had `after_items` items (see hold.py)."""
    body = await _control_json(request)
    hold = site_state(request).hold
    if not isinstance(body, dict) or not isinstance(body.get("route"), str):
        return detail(400, 'Expected {"route": "METHOD /api/...", "after_items": N}.')
    after_items, max_hold_s = body.get("after_items", 0), body.get("max_hold_s", MAX_HOLD_S)
    if isinstance(after_items, bool) or not isinstance(after_items, int):
        return detail(400, "after_items must be an integer")
    if isinstance(max_hold_s, bool) or not isinstance(max_hold_s, int | float):
        return detail(400, "max_hold_s must be a number")
    try:
        hold.arm(body["route"], after_items, max_hold_s=float(max_hold_s))
    except ValueError as error:
        return detail(400, str(error))
    return json_response(hold.to_json())


async def _release_hold(request: web.Request) -> web.Response:
    hold = site_state(request).hold
    hold.release()
    return json_response(hold.to_json())


_SITE_ROUTES: dict[str, Handler] = {
    "/bot/roles": _endpoint({"GET": roles.list_roles, "POST": roles.create_role}, negotiated=True),
    "/bot/roles/{id:[^/.]+}": _endpoint(
        {
            "GET": roles.get_role,
            "PUT": roles.put_role,
            "PATCH": roles.patch_role,
            "DELETE": roles.delete_role,
        },
        negotiated=True,
    ),
    "/bot/users": _endpoint({"GET": users.list_users, "POST": users.create_users}, negotiated=True),
    # Before the detail route, which would otherwise take "bulk_patch" for an id.
    "/bot/users/bulk_patch": _endpoint({"PATCH": users.bulk_patch}, negotiated=True),
    "/bot/users/{id:[^/.]+}": _endpoint(
        {
            "GET": users.get_user,
            "PUT": users.put_user,
            "PATCH": users.patch_user,
            "DELETE": users.delete_user,
        },
        negotiated=True,
    ),
}
# DRF's format_suffix_patterns, which the site's router adds after each of its routes:
# "bot/users/1.json" is "bot/users/1" rendered as JSON, "bot/users/9.0" is format "0" (a 404).
_FORMAT_SUFFIX = ".{format:[a-z0-9]+/?}"
_FORMAT_TEMPLATE = ".{format}"
_ROUTES: dict[str, Handler] = {
    "/healthcheck": _endpoint({"GET": _healthcheck}, public=True),
    **{
        variant: endpoint
        for path, endpoint in _SITE_ROUTES.items()
        for variant in (path, path + _FORMAT_SUFFIX)
    },
    "/_sandbox/stats": _endpoint({"GET": _get_stats}),
    "/_sandbox/faults": _endpoint({"GET": _get_faults, "POST": _set_faults}),
    "/_sandbox/hold": _endpoint({"GET": _get_hold, "POST": _arm_hold, "DELETE": _release_hold}),
}


def _route_template(request: web.Request) -> str | None:
    """The route's template, a format suffix left out: "bot/users/1.json" is counted, held and
    faulted as "/api/bot/users/{id}"."""
    resource = request.match_info.route.resource
    return None if resource is None else resource.canonical.removesuffix(_FORMAT_TEMPLATE)


def _draw_fault(request: web.Request, template: str | None) -> Fault | None:
    """The fault for this request, counted in the stats; only the site's own routes get one."""
    state = site_state(request)
    if template is None or not template.startswith(_FAULTABLE_PREFIX):
        return None
    fault = state.faults.decide(route=request[ROUTE], is_write=request.method in _WRITE_METHODS)
    if fault is not None:
        state.stats.record_fault(fault.value)
    return fault


def _throttled(retry_after: float) -> web.Response:
    seconds = max(1, math.ceil(retry_after))
    message = f"Request was throttled. Expected available in {seconds} second{'s' * (seconds > 1)}."
    return detail(429, message, **{"Retry-After": f"{retry_after:g}"})


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Answer as answer:
        return answer.response
    except WorkerKilled:
        raise
    except web.HTTPNotFound:
        return not_found_page()
    except SiteCrash as crash:
        log.info("sandbox site: %s %s answered 500: %s", request.method, request.path, crash)
        return server_error_page()
    except Exception:
        log.exception("sandbox site: %s %s failed", request.method, request.path)
        return server_error_page()


@web.middleware
async def _site_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = site_state(request)
    template = _route_template(request)
    route = request[ROUTE] = f"{request.method} {template or 'unmatched'}"
    if template is not None and template.startswith(_CONTROL_PREFIX):
        return await _handle(request, handler)
    state.stats.record_request(route)
    user_write = request.method in _WRITE_METHODS and (template or "").startswith(_USER_PAGES)
    state.stats.request_arrived(route, user_write=user_write)
    try:
        return await _serve(request, handler, state, template)
    finally:
        state.stats.request_answered(route, user_write=user_write)


async def _serve(
    request: web.Request, handler: Handler, state: SiteState, template: str | None
) -> web.StreamResponse:
    fault = _draw_fault(request, template)
    if fault in (Fault.SERVER_ERROR, Fault.REJECTED_WRITE):
        return server_error_page()
    if fault is Fault.RATE_LIMITED:
        return _throttled(state.faults.config.retry_after)
    if fault is Fault.SLOW:
        await asyncio.sleep(state.faults.config.slow_delay)
    try:
        response = await _handle(request, handler)
        if not request.get(CHARGED, False):
            await spend(request, request_work())  # a handler without a cost of its own
    except WorkerKilled as killed:
        return _killed_worker(request, killed, state)
    if template == _USER_PAGES and request.method == "GET" and response.status == 200:
        response = _maybe_malformed(request, response)
    if fault is Fault.DROP and request.transport is not None:
        # The request was applied; its answer is lost, as when a proxy or the network fails.
        request.transport.close()
    return response


def _killed_worker(request: web.Request, killed: WorkerKilled, state: SiteState) -> web.Response:
    """What the client gets from a worker the OOM killer took mid-request: nothing (the
    connection closes; gunicorn serves the bot directly in docker-compose.yml), or a proxy's 502."""
    log.info("sandbox site: %s %s died with its worker: %s", request.method, request.path, killed)
    if state.cost.config.oom_answer == "502":
        return web.Response(text=BAD_GATEWAY_PAGE, status=502, content_type="text/html")
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=502)  # never reaches the client: its connection is closed


def _maybe_malformed(request: web.Request, page: web.StreamResponse) -> web.StreamResponse:
    """The user page broken the way `malformed_pages` says (the data itself is untouched)."""
    state = site_state(request)
    try:
        number = int(request.query.get("page", "1"))
    except ValueError:
        return page
    kind = state.faults.malformed_page(number)
    if kind is None or not isinstance(page, web.Response) or page.body is None:
        return page
    state.stats.record_fault(Fault.MALFORMED_PAGE.value)
    if kind is Malformed.HTML_500:
        return server_error_page()
    body = bytes(page.body)  # type: ignore[arg-type]
    if kind is Malformed.INVALID_JSON:
        return web.Response(body=body[: len(body) // 2], content_type="application/json")
    data = json.loads(body)
    for user in data["results"]:
        if kind is Malformed.WRONG_TYPES:
            user["id"], user["roles"], user["in_guild"] = str(user["id"]), "none", "maybe"
        else:
            del user["name"], user["in_guild"]
    return json_response(data)


def create_app(state: SiteState) -> web.Application:
    app = web.Application(middlewares=[_site_middleware], client_max_size=MAX_REQUEST_BYTES)
    app[SITE_STATE] = state
    for path, endpoint in _ROUTES.items():
        app.router.add_route("*", API_PREFIX + path, endpoint)
    return app
