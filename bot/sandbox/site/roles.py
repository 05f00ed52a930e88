"""`bot/roles`: a plain list and detail endpoints; deleting a role strips it from every user."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.sandbox.site.context import path_id, read_json, site_state, spend
from bot.sandbox.site.cost import cascade_work
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
_TAKEN = "role with this ID already exists."


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
        errors = {"id": [_TAKEN], **errors}
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
    """Django's save() of the URL's row with the body applied. A body `id` other than the URL's
    goes through the id's unique validator (a field error, reported with the other fields'),
    and when it is free the row is written under that id: a new role, the URL's left as is."""
    state = site_state(request)
    role = _existing_role(request)
    values, errors = _validated_role(await read_json(request), partial=partial)
    if values.get("id", role["id"]) != role["id"]:
        state.stats.record_misreadable("body_id_differs")  # whatever the answer
        if state.store.get_role(values["id"]) is not None:
            errors = {"id": [_TAKEN], **errors}
    if errors:
        raise field_errors(errors)
    updated = {**role, **values}
    state.store.save_role(updated)
    return json_response(updated)


async def delete_role(request: web.Request) -> web.Response:
    state = site_state(request)
    rewritten = state.store.delete_role(path_id(request))
    if rewritten is None:
        raise Answer(detail(404, _NO_ROLE))
    state.stats.record_role_cascade(rewritten)
    # The holders are known once the cascade ran, so its modelled time is served after it (it
    # holds no modelled memory, so it cannot die at the limit half-written).
    await spend(request, cascade_work(rewritten))
    return no_content()
