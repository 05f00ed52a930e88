"""Sentry for the bot: started inside the running loop, scrubbing every secret from events.

`init_sentry` must run inside the event loop because the asyncio integration instruments the
loop that is running when it starts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.aiohttp import AioHttpIntegration
from sentry_sdk.integrations.asyncio import AsyncioIntegration
from sentry_sdk.integrations.logging import LoggingIntegration

from guild_sync.log import REDACTED, redact

log = logging.getLogger(__name__)


def scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    """Replace secrets anywhere inside an event (strings nested in dicts, lists and tuples)."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {scrub(k, secrets): scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub(v, secrets) for v in value)
    return value


def make_before_send(secrets: Iterable[str]):
    kept = tuple(s for s in secrets if s)

    def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        event = scrub(event, kept)
        headers = event.get("request", {}).get("headers")
        if isinstance(headers, dict) and "Authorization" in headers:
            headers["Authorization"] = REDACTED
        return event

    return before_send


def init_sentry(dsn: str, environment: str, secrets: Iterable[str], transport: Any = None) -> None:
    """Start Sentry; `transport` lets tests record events locally instead of sending them."""
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[
            AsyncioIntegration(),
            AioHttpIntegration(),
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
        ],
        traces_sample_rate=1.0,
        before_send=make_before_send(secrets),
        before_send_transaction=make_before_send(secrets),
        transport=transport,
    )
    log.info("Sentry is on (environment %s)", environment)
