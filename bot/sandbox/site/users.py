"""`bot/users`: pages, detail endpoints, bulk create and `bulk_patch`, with the site's odd parts.

The order of the checks and the exact bodies follow shared/site-api.md: the bot's sender
reacts to each of them differently (404 -> create instead, 400 -> bisect, 500 -> retry).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.sandbox.site.context import path_id, read_json, site_state
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
    validate_object,
)

DEFAULT_PAGE_SIZE = 2500
_NO_USER = "No User matches the given query."

Validated = tuple[dict[str, Any], dict[str, Any]]


def _validate_user(data: Any, known_roles: frozenset[int], *, partial: bool) -> Validated:
    """Field validation plus the site's check that every role in `roles` exists."""
    values, errors = validate_object(data, USER_SCHEMA, partial=partial)
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
    page_size = _page_size(request.query.get("page_size"))
    pages = max(1, -(-store.count_users() // page_size))
    page = _page_number(request.query.get("page"), pages)
    results = store.users_page_json(page, page_size)
    next_page = page + 1 if page < pages else None
    previous_page = page - 1 if page > 1 else None
    return json_text_response(
        f'{{"count":{store.count_users()},"next_page_no":{_json_int(next_page)},'
        f'"previous_page_no":{_json_int(previous_page)},"results":{results}}}'
    )


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
    if isinstance(data, list):
        return _create_many(request, data)
    store = site_state(request).store
    values, errors = _validate_one(request, data, partial=False)
    user_id = values.get("id")
    if user_id is not None and store.get_user(user_id) is not None:
        errors = {"id": ["User with ID already present."], **errors}
    if errors:
        raise field_errors(errors)
    user = _new_user(values)
    _ensure_storable([user["id"]])
    store.insert_user(user)
    return json_response(user, 201)


def _create_many(request: web.Request, items: list[Any]) -> web.Response:
    """One INSERT ... ON CONFLICT DO NOTHING: existing ids are skipped and NOT updated."""
    store = site_state(request).store
    known_roles = store.role_ids()
    checked = [_validate_user(item, known_roles, partial=False) for item in items]
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
    known_roles = state.store.role_ids()
    checked = [_validate_user(item, known_roles, partial=True) for item in data]
    if any(errors for _, errors in checked):
        raise field_errors([errors for _, errors in checked])
    patches = [values for values, _ in checked]

    seen: set[int] = set()
    for patch in patches:
        if "id" not in patch:
            raise field_errors({"id": [REQUIRED]})
        if patch["id"] in seen:
            raise field_errors({"id": [f"User with ID {patch['id']} given multiple times."]})
        seen.add(patch["id"])
    _ensure_storable(seen)

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
    user = _existing_user(request)
    values, errors = _validate_one(request, await read_json(request), partial=partial)
    if errors:
        raise field_errors(errors)
    if "id" in values:
        _ensure_storable([values["id"]])
    updated = {**user, **values, "id": user["id"]}
    site_state(request).store.update_users([updated])
    return json_response(updated)


async def delete_user(request: web.Request) -> web.Response:
    if not site_state(request).store.delete_user(path_id(request)):
        raise Answer(detail(404, _NO_USER))
    return no_content()
