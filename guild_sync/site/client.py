"""The site's REST API over aiohttp: auth, JSON, timeouts and bounded retries.

Every write the sync makes is idempotent (bulk_patch sets absolute values, bulk create skips ids
that exist, role PUT/DELETE name their target), so a request whose answer was lost can be sent
again safely.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiohttp

from guild_sync.site.errors import BODY_EXCERPT_CHARS, SiteAPIError
from guild_sync.site.records import RecordError, Role, User
from guild_sync.site.retry import RetryPolicy

log = logging.getLogger(__name__)

RetryHook = Callable[[SiteAPIError, int, float], Awaitable[None] | None]
"""Called before each retry with the error, the attempt that failed (1-based) and the wait."""


class UserPage(list[User]):
    """One page of the site's users; `site_total` is the page's `count` (every user the site
    holds), None if the site did not say."""

    site_total: int | None = None


class SiteClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        on_retry: RetryHook | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self._session = session
        self._owns_session = session is None

    def __repr__(self) -> str:
        return f"SiteClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> SiteClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Token {self._token}"},
                json_serialize=lambda obj: json.dumps(obj, separators=(",", ":")),
            )
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()

    # -- transport -----------------------------------------------------------------------

    async def request(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        """Send one request, retrying transient failures; return the decoded JSON (or None)."""
        attempt = 1
        while True:
            try:
                return await self._request_once(method, path, json, params)
            except SiteAPIError as error:
                if not error.transient or attempt >= self.retry.attempts:
                    raise
                wait = self.retry.delay(attempt, error.retry_after)
                log.warning(
                    "%s (attempt %d/%d), retrying in %.1f s",
                    error.summary(),
                    attempt,
                    self.retry.attempts,
                    wait,
                )
                if self.on_retry is not None:
                    result = self.on_retry(error, attempt, wait)
                    if result is not None:
                        await result
                await asyncio.sleep(wait)
                attempt += 1

    async def _request_once(
        self, method: str, path: str, body: Any, params: Mapping[str, Any] | None
    ) -> Any:
        url = f"{self.base_url}/{path.lstrip('/')}"
        kwargs: dict[str, Any] = {"params": params, "timeout": self.timeout}
        if body is not None:
            kwargs["json"] = body
        try:
            async with self.session.request(method, url, **kwargs) as response:
                text = await response.text()
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
                is_json = response.content_type == "application/json"
        except TimeoutError:
            raise SiteAPIError(method, path, None, reason="timed out") from None
        except aiohttp.ClientError as error:
            raise SiteAPIError(method, path, None, reason=type(error).__name__) from None

        if status == 204 or not text:
            decoded: Any = None
        elif is_json:
            try:
                decoded = json.loads(text)
            except ValueError:
                raise SiteAPIError(
                    method, path, status, text[:BODY_EXCERPT_CHARS], reason="invalid JSON"
                ) from None
        else:
            decoded = text[:BODY_EXCERPT_CHARS]
        if status >= 400:
            raise SiteAPIError(method, path, status, decoded, retry_after=retry_after)
        if decoded is not None and not is_json:
            raise SiteAPIError(method, path, status, decoded, reason="not JSON")
        return decoded

    # -- endpoints -----------------------------------------------------------------------

    async def healthcheck(self) -> bool:
        body = await self.request("GET", "healthcheck")
        return isinstance(body, dict) and body.get("status") == "ok"

    async def list_roles(self) -> list[Role]:
        body = await self.request("GET", "bot/roles")
        return _records(body, Role.from_json, "GET", "bot/roles")

    async def create_role(self, role: Role) -> None:
        """Create a role. "Already exists" is checked, not believed: when an earlier attempt
        landed but its answer was lost, the retry is refused although the role is there, so
        the role is read back and the create counts as done if it matches."""
        try:
            await self.request("POST", "bot/roles", json=role.to_json())
        except SiteAPIError as error:
            if not _already_exists(error) or await self.get_role(role.id) != role:
                raise

    async def get_role(self, role_id: int) -> Role | None:
        return await self._get_one(f"bot/roles/{role_id}", Role.from_json)

    async def update_role(self, role: Role) -> None:
        await self.request("PUT", f"bot/roles/{role.id}", json=role.to_json())

    async def delete_role(self, role_id: int) -> None:
        """Delete a role; a role that is already gone counts as deleted (idempotent retry)."""
        try:
            await self.request("DELETE", f"bot/roles/{role_id}")
        except SiteAPIError as error:
            if error.status != 404:
                raise

    async def get_user(self, user_id: int) -> User | None:
        return await self._get_one(f"bot/users/{user_id}", User.from_json)

    async def _get_one(self, path: str, parse: Callable[[Any], Any]) -> Any:
        """One record by its detail URL; None when the site has no such record (404)."""
        try:
            body = await self.request("GET", path)
        except SiteAPIError as error:
            if error.status == 404:
                return None
            raise
        return _record(body, parse, "GET", path)

    async def iter_user_pages(self, page_size: int = 2500) -> AsyncIterator[UserPage]:
        """Yield the site's users one page at a time, ordered by id; never holds two pages."""
        page: int | None = 1
        while page is not None:
            params = {"page": page, "page_size": page_size}
            body = await self.request("GET", "bot/users", params=params)
            if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                raise SiteAPIError(
                    "GET", f"bot/users?page={page}", 200, _excerpt(body), reason="not a user page"
                )
            users = UserPage(
                _records(body["results"], User.from_json, "GET", f"bot/users?page={page}")
            )
            total = body.get("count")
            if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
                users.site_total = total
            next_page = body.get("next_page_no")
            if next_page is not None and (not isinstance(next_page, int) or next_page <= page):
                raise SiteAPIError(
                    "GET", f"bot/users?page={page}", 200, _excerpt(body), reason="bad next_page_no"
                )
            yield users
            page = next_page

    async def create_users(self, users: Iterable[User]) -> None:
        """Bulk create. Ids that already exist are skipped by the site, not updated."""
        body = [user.to_json() for user in users]
        if body:
            await self.request("POST", "bot/users", json=body)

    async def bulk_patch_users(self, patches: list[dict[str, Any]]) -> Any:
        """PATCH bot/users/bulk_patch; the caller guarantees a non-empty, bounded list."""
        if not patches:
            raise ValueError("an empty bulk_patch is a 500 on the site; never send one")
        return await self.request("PATCH", "bot/users/bulk_patch", json=patches)


def _retry_after(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None


def _excerpt(body: Any) -> str:
    return repr(body)[:BODY_EXCERPT_CHARS]


def _record(body: Any, parse: Callable[[Any], Any], method: str, path: str) -> Any:
    try:
        return parse(body)
    except RecordError as error:
        raise SiteAPIError(method, path, 200, _excerpt(body), reason=str(error)) from None


def _records(body: Any, parse: Callable[[Any], Any], method: str, path: str) -> list[Any]:
    if not isinstance(body, list):
        raise SiteAPIError(method, path, 200, _excerpt(body), reason="expected a list")
    return [_record(item, parse, method, path) for item in body]


def _already_exists(error: SiteAPIError) -> bool:
    """The site's 400 for a create whose id is taken ("role with this ID already exists.")."""
    body = error.body
    return (
        error.status == 400
        and isinstance(body, dict)
        and any("already exists" in str(message) for message in body.get("id", []))
    )
