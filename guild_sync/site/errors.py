"""The one error type the site client raises, so callers branch on status, never on aiohttp."""

from __future__ import annotations

from typing import Any

BODY_EXCERPT_CHARS = 500


class SiteAPIError(Exception):
    """A request to the site that did not succeed.

    `status` is the HTTP status, or None when no response came back (timeout, refused or reset
    connection). `body` is the decoded JSON when the site sent JSON, otherwise the first
    `BODY_EXCERPT_CHARS` characters of the text (Django's 500 pages are HTML).
    """

    def __init__(
        self,
        method: str,
        path: str,
        status: int | None,
        body: Any = None,
        *,
        reason: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.body = body
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(self.summary())

    @property
    def transient(self) -> bool:
        """Whether trying again later may succeed: no response, 429, or a server error."""
        return self.status is None or self.status == 429 or self.status >= 500

    def summary(self) -> str:
        where = f"{self.method} {self.path}"
        if self.status is None:
            return f"{where}: no response ({self.reason or 'connection failed'})"
        detail = self.body if isinstance(self.body, str) else repr(self.body)
        detail = " ".join(detail.split())  # an HTML error page on one line
        reason = f" ({self.reason})" if self.reason else ""
        return f"{where}: HTTP {self.status}{reason}: {detail[:BODY_EXCERPT_CHARS]}"
