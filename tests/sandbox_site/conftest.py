"""Fixtures: an in-process sandbox site on a loopback port and a raw HTTP client for it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bot.sandbox.site import DEFAULT_TOKEN, SandboxSite


@dataclass
class Reply:
    status: int
    headers: Any
    text: str

    @property
    def json(self) -> Any:
        assert self.headers.get("Content-Type") == "application/json", self.headers
        return json.loads(self.text)

    @property
    def is_html(self) -> bool:
        return self.headers.get("Content-Type", "").startswith("text/html")


class Api:
    """Raw HTTP against the site: every test sees statuses, headers and bodies as sent."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Reply:
        send_headers = {"Authorization": f"Token {DEFAULT_TOKEN}"}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            send_headers["Content-Type"] = "application/json"
        send_headers.update(headers or {})
        async with self.session.request(
            method, f"{self.base_url}/{path}", data=data, headers=send_headers, params=params
        ) as response:
            return Reply(response.status, response.headers, await response.text())

    async def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        reply = await self.call(method, path, body, **kwargs)
        assert reply.status < 300, (reply.status, reply.text)
        return reply.json if reply.text else None


@pytest.fixture
async def site() -> AsyncIterator[SandboxSite]:
    async with SandboxSite() as running:
        yield running


@pytest.fixture
async def api(site: SandboxSite) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, site.url)


def role_json(role_id: int, position: int = 0, **changes: Any) -> dict[str, Any]:
    role = {"id": role_id, "name": f"role {role_id}", "colour": 0, "permissions": 0}
    return {**role, "position": position, **changes}


def user_json(user_id: int, **changes: Any) -> dict[str, Any]:
    user = {"id": user_id, "name": f"user{user_id}", "display_name": f"User {user_id}"}
    return {**user, "discriminator": 0, "roles": [], "in_guild": True, **changes}
