"""`bot/roles`: a plain list and detail endpoints; deleting a role strips it from every user."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.sandbox.site.context import path_id, read_json, site_state
from bot.sandbox.site.responses import (
    Answer,
    detail,
    field_errors,
    json_response,
    no_content,
    non_field_error,
)
from bot.sandbox.site.validation import ROLE_SCHEMA, validate_object

_NO_ROLE = "No Role matches the given query."


def _validated_role(data: Any, *, partial: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    if data is None:
        raise non_field_error("No data provided")
    return validate_object(data, ROLE_SCHEMA, partial=partial)


def _existing_role(request: web.Request) -> dict[str, Any]:
    role = site_state(request).store.get_role(path_id(request))
    if role is None:
        raise Answer(detail(404, _NO_ROLE))
    return role


async def list_roles(request: web.Request) -> web.Response:
    return json_response(site_state(request).store.list_roles())


async def create_role(request: web.Request) -> web.Response:
    store = site_state(request).store
    values, errors = _validated_role(await read_json(request), partial=False)
    if "id" in values and store.get_role(values["id"]) is not None:
        errors = {"id": ["role with this ID already exists."], **errors}
    if errors:
        raise field_errors(errors)
    store.insert_role(values)
    return json_response(values, 201)


async def get_role(request: web.Request) -> web.Response:
    return json_response(_existing_role(request))


async def put_role(request: web.Request) -> web.Response:
    return await _update_role(request, partial=False)


async def patch_role(request: web.Request) -> web.Response:
    return await _update_role(request, partial=True)


async def _update_role(request: web.Request, *, partial: bool) -> web.Response:
    role = _existing_role(request)
    values, errors = _validated_role(await read_json(request), partial=partial)
    if errors:
        raise field_errors(errors)
    updated = {**role, **values, "id": role["id"]}
    site_state(request).store.update_role(updated)
    return json_response(updated)


async def delete_role(request: web.Request) -> web.Response:
    state = site_state(request)
    rewritten = state.store.delete_role(path_id(request))
    if rewritten is None:
        raise Answer(detail(404, _NO_ROLE))
    state.stats.record_role_cascade(rewritten)
    return no_content()
