"""`bot/users`: pages, detail endpoints, bulk create and `bulk_patch`, with the site's odd parts.

The order of the checks and the exact bodies follow shared/site-api.md: the bot's sender
reacts to each of them differently (404 -> create instead, 400 -> bisect, 500 -> retry).
"""

from __future__ import annotations

from decimal import Decimal, DecimalException
from typing import Any

from aiohttp import web

from bot.sandbox.site.context import path_id, read_json, site_state, spend
from bot.sandbox.site.cost import bulk_patch_work, create_work, page_work
from bot.sandbox.site.responses import (
    Answer,
    SiteCrash,
    detail,
    field_errors,
    json_response,
    json_text_response,
    no_content,
    non_field_error,
)
from bot.sandbox.site.store import MAX_DB_INTEGER
from bot.sandbox.site.validation import (
    REQUIRED,
    USER_DEFAULTS,
    USER_SCHEMA,
    missing_roles,
    validate_item,
)

DEFAULT_PAGE_SIZE = 2500
_NO_USER = "No User matches the given query."
# django-filter's `filterset_fields` on the site's user list: exact matches, checked (400) before
# the page is. The names are CharFilters (Django's CharField form field strips the value), the
# discriminator a NumberFilter (a DecimalField: "Enter a number.").
_TEXT_FILTERS = ("name", "display_name")
_NUMBER_FILTER = "discriminator"
_NOT_A_NUMBER = "Enter a number."
_FILTER_MAX_EXPONENT = 6
MAX_DISCRIMINATOR = 9999
_NO_DISCRIMINATOR = -1
"""A discriminator no user has: what a filter outside 0..9999 compares with."""

Validated = tuple[dict[str, Any], Any]


def _validate_user(data: Any, known_roles: frozenset[int], *, partial: bool) -> Validated:
    """Field validation plus the site's check that every role in `roles` exists; a list's
    `null` item gets its own error (a list of messages, not a dict)."""
    values, errors = validate_item(data, USER_SCHEMA, partial=partial)
    if "roles" in values:
        messages = missing_roles(values["roles"], known_roles)
        if messages:
            errors["roles"] = messages
            errors = {name: errors[name] for name in USER_SCHEMA if name in errors}
    return values, errors


def _validate_one(request: web.Request, data: Any, *, partial: bool) -> Validated:
    if data is None:
        raise non_field_error("No data provided")
    return _validate_user(data, site_state(request).store.role_ids(), partial=partial)


def _note_misreadable(
    request: web.Request, items: list[dict[str, Any]], url_id: int | None = None
) -> None:
    """Count a body the site takes otherwise than meant, whatever the answer: a user's `roles`
    naming an id twice, a detail URL's body naming another id (see SiteStats.misreadable)."""
    stats = site_state(request).stats
    if any(len(set(item.get("roles", ()))) != len(item.get("roles", ())) for item in items):
        stats.record_misreadable("duplicate_role_ids")
    if url_id is not None and any(item.get("id", url_id) != url_id for item in items):
        stats.record_misreadable("body_id_differs")


def _new_user(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": values["id"],
        "name": values["name"],
        "display_name": values.get("display_name", USER_DEFAULTS["display_name"]),
        "discriminator": values["discriminator"],
        "roles": values.get("roles", []),
        "in_guild": values.get("in_guild", USER_DEFAULTS["in_guild"]),
    }


def _ensure_storable(user_ids: Any) -> None:
    if any(user_id > MAX_DB_INTEGER for user_id in user_ids):
        raise SiteCrash("user id out of range for bigint")


def _existing_user(request: web.Request) -> dict[str, Any]:
    user = site_state(request).store.get_user(path_id(request))
    if user is None:
        raise Answer(detail(404, _NO_USER))
    return user


# -- collection ------------------------------------------------------------------------------


async def list_users(request: web.Request) -> web.Response:
    store = site_state(request).store
    filters = _filters(request)
    count = store.count_users(filters)
    page_size = _page_size(_query(request, "page_size"))
    pages = max(1, -(-count // page_size))
    page = _page_number(_query(request, "page"), pages)
    await spend(request, page_work(max(0, min(page_size, count - (page - 1) * page_size))))
    results = store.users_page_json(page, page_size, filters)
    next_page = page + 1 if page < pages else None
    previous_page = page - 1 if page > 1 else None
    return json_text_response(
        f'{{"count":{count},"next_page_no":{_json_int(next_page)},'
        f'"previous_page_no":{_json_int(previous_page)},"results":{results}}}'
    )


def _query(request: web.Request, name: str) -> str | None:
    """A query parameter as Django's QueryDict.get reads it: the last value given."""
    values = request.query.getall(name, [])
    return values[-1] if values else None


def _filters(request: web.Request) -> dict[str, Any]:
    """The exact-match filters (column -> value) of the query; an empty value filters nothing
    and an invalid one is a 400."""
    filters: dict[str, Any] = {}
    for name in _TEXT_FILTERS:
        value = (_query(request, name) or "").strip()
        if value:
            filters[name] = value
    raw = _query(request, _NUMBER_FILTER)
    if raw:
        try:
            number = Decimal(raw)
        except DecimalException:
            number = Decimal("NaN")
        if not number.is_finite():
            raise field_errors({_NUMBER_FILTER: [_NOT_A_NUMBER]})
        # Django's IntegerField.get_prep_value: int(), so a fraction is cut off; a value out of
        # the column's range matches nothing (and is never made into a huge int).
        value = int(number) if number.adjusted() <= _FILTER_MAX_EXPONENT else _NO_DISCRIMINATOR
        filters[_NUMBER_FILTER] = value if 0 <= value <= MAX_DISCRIMINATOR else _NO_DISCRIMINATOR
    return filters


def _page_size(raw: str | None) -> int:
    """DRF's rule: a positive integer, else the default (no error, no maximum)."""
    try:
        size = int(raw) if raw is not None else DEFAULT_PAGE_SIZE
    except ValueError:
        return DEFAULT_PAGE_SIZE
    return size if size > 0 else DEFAULT_PAGE_SIZE


def _page_number(raw: str | None, pages: int) -> int:
    if raw == "last":
        return pages
    try:
        page = int(raw or 1)
    except ValueError:
        page = 0
    if not 1 <= page <= pages:
        raise Answer(detail(404, "Invalid page."))
    return page


def _json_int(value: int | None) -> str:
    return "null" if value is None else str(value)


async def create_users(request: web.Request) -> web.Response:
    data = await read_json(request)
    await spend(request, create_work(data if isinstance(data, list) else [data]))
    if isinstance(data, list):
        return _create_many(request, data)
    store = site_state(request).store
    values, errors = _validate_one(request, data, partial=False)
    _note_misreadable(request, [values])
    if errors:
        raise field_errors(errors)
    # The site catches the database's IntegrityError: uniqueness only once every field is valid.
    if store.get_user(values["id"]) is not None:
        raise field_errors({"id": ["User with ID already present."]})
    user = _new_user(values)
    _ensure_storable([user["id"]])
    store.insert_user(user)
    return json_response(user, 201)


def _create_many(request: web.Request, items: list[Any]) -> web.Response:
    """One INSERT ... ON CONFLICT DO NOTHING: existing ids are skipped and NOT updated."""
    store = site_state(request).store
    known_roles = store.role_ids()
    checked = [_validate_user(item, known_roles, partial=False) for item in items]
    _note_misreadable(request, [values for values, _ in checked])
    if any(errors for _, errors in checked):
        raise field_errors([errors for _, errors in checked])
    seen: set[int] = set()
    for values, _ in checked:
        if values["id"] in seen:
            raise field_errors({"id": [f"User with ID {values['id']} given multiple times."]})
        seen.add(values["id"])
    _ensure_storable(seen)
    store.insert_users_ignoring_existing(_new_user(values) for values, _ in checked)
    return json_response([], 201)


async def bulk_patch(request: web.Request) -> web.Response:
    state = site_state(request)
    data = await read_json(request)
    if data is None:
        raise non_field_error("No data provided")
    if not isinstance(data, list):
        raise non_field_error(f'Expected a list of items but got type "{type(data).__name__}".')
    state.stats.record_bulk_patch(len(data))
    # Served before it is checked: a refused request is charged as an accepted one (the split
    # between the site's validation and its UPDATE was not measured).
    await spend(request, bulk_patch_work(data))
    known_roles = state.store.role_ids()
    checked = [_validate_user(item, known_roles, partial=True) for item in data]
    patches = [values for values, _ in checked]
    _note_misreadable(request, patches)
    if any(errors for _, errors in checked):
        raise field_errors([errors for _, errors in checked])

    seen: set[int] = set()
    for patch in patches:
        if "id" not in patch:
            raise field_errors({"id": [REQUIRED]})
        if patch["id"] in seen:
            raise field_errors({"id": [f"User with ID {patch['id']} given multiple times."]})
        seen.add(patch["id"])

    # An id of 2**63 or more is simply not in the table (Django drops an out-of-range lookup).
    existing = state.store.get_users(seen)
    for patch in patches:
        if patch["id"] not in existing:
            raise Answer(detail(404, f"User with id {patch['id']} not found."))
    if not patches:
        # The site removes "id" from an empty set of fields to update: KeyError, 500.
        raise SiteCrash("KeyError: 'id' (empty bulk_patch)")
    if not any(len(patch) > 1 for patch in patches):
        raise non_field_error("Insufficient data provided.")

    updated = [{**existing[patch["id"]], **patch} for patch in patches]
    state.store.update_users(updated)
    return json_response(updated)


# -- detail ----------------------------------------------------------------------------------


async def get_user(request: web.Request) -> web.Response:
    return json_response({**_existing_user(request), "alts": []})


async def put_user(request: web.Request) -> web.Response:
    return await _update_user(request, partial=False)


async def patch_user(request: web.Request) -> web.Response:
    return await _update_user(request, partial=True)


async def _update_user(request: web.Request, *, partial: bool) -> web.Response:
    """Django's save() of the URL's row with the body applied: a body `id` other than the URL's
    writes that id instead, a new row when it is free, an overwrite of that user when it is
    taken (fields not sent come from the URL's row); the URL's row is left as it was."""
    user = _existing_user(request)
    values, errors = _validate_one(request, await read_json(request), partial=partial)
    _note_misreadable(request, [values], url_id=user["id"])
    if errors:
        raise field_errors(errors)
    if values.get("id", user["id"]) != user["id"]:
        _ensure_storable([values["id"]])
    updated = {**user, **values}
    site_state(request).store.save_user(updated)
    return json_response(updated)


async def delete_user(request: web.Request) -> web.Response:
    if not site_state(request).store.delete_user(path_id(request)):
        raise Answer(detail(404, _NO_USER))
    return no_content()
