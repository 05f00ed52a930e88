"""Sentry for the extension: the host's client when it has one, else the extension's own, and
every secret scrubbed from every event either way.

A host such as python-discord/bot initialises Sentry once, with its release and integrations;
`sentry_sdk.init` here would replace that client and lose both. So with a host client the
extension only chains its scrubbing after the client's own `before_send` (and
`before_send_transaction`): that is the last step before an event leaves, after every event
processor and the SDK's serialisation, so the host's callbacks still run and whatever they and
the SDK put into the event is scrubbed too. A scope event processor would run before the SDK
adds a stack trace's local variables (`attach_stacktrace`) and before later processors, so it
could not promise that. The extension's tags (run id, kind, trigger, status) are set on the
scopes and transactions of its own events (`_tracing.py`), so they reach a host client as they
are; none are put on the host's scope, where they would tag the host's events.

`init_sentry` must run inside the event loop because the asyncio integration instruments the
loop that is running when it starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.aiohttp import AioHttpIntegration
from sentry_sdk.integrations.asyncio import AsyncioIntegration
from sentry_sdk.integrations.logging import LoggingIntegration

from guild_sync.config import Settings
from guild_sync.log import REDACTED, redact

log = logging.getLogger(__name__)

EventHook = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | None]

_own_client: Any = None
"""The client `init_sentry` made: a reload re-initialises it, as before, instead of taking it
for a host's."""


def scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    """Replace secrets anywhere inside an event (strings nested in dicts, lists and tuples)."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {scrub(k, secrets): scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub(v, secrets) for v in value)
    return value


class Scrubber:
    """A `before_send` that removes the extension's secrets, run after `first` (a host's own
    callback, None if it had none) so the scrubbing has the last word. `first` dropping the
    event (None) drops it."""

    def __init__(self, secrets: Iterable[str], first: EventHook | None = None) -> None:
        self.secrets = tuple(dict.fromkeys(s for s in secrets if s))
        self.first = first

    def add(self, secrets: Iterable[str]) -> None:
        """A reloaded extension's settings: scrub their secrets as well (the old ones may still
        sit in objects a later event reports)."""
        self.secrets = tuple(dict.fromkeys((*self.secrets, *(s for s in secrets if s))))

    def __call__(self, event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        if self.first is not None:
            kept = self.first(event, hint)
            if kept is None:
                return None
            event = kept
        event = scrub(event, self.secrets)
        headers = event.get("request", {}).get("headers")
        if isinstance(headers, dict) and "Authorization" in headers:
            headers["Authorization"] = REDACTED
        return event


def make_before_send(secrets: Iterable[str]) -> Scrubber:
    return Scrubber(secrets)


def host_client() -> Any | None:
    """The Sentry client someone else initialised and that can send, or None.

    `is_active()` alone is not enough: a client stays "active" after `close()`, and a host that
    called `sentry_sdk.init()` without a DSN has an active client that sends nothing; neither is
    a client to keep, so the extension starts its own when it has a DSN."""
    client = sentry_sdk.get_client()
    if not client.is_active() or client.transport is None or client is _own_client:
        return None
    return client


def join_host_sentry(client: Any, secrets: Iterable[str]) -> None:
    """Keep the host's client and its options; scrub the extension's secrets after its own
    callbacks. Loading the extension again adds to the same chain instead of stacking another."""
    for option in ("before_send", "before_send_transaction"):
        current = client.options.get(option)
        if isinstance(current, Scrubber):
            current.add(secrets)
        else:
            client.options[option] = Scrubber(secrets, first=current)


def init_sentry(dsn: str, environment: str, secrets: Iterable[str], transport: Any = None) -> None:
    """Start Sentry; `transport` lets tests record events locally instead of sending them."""
    global _own_client
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
    _own_client = sentry_sdk.get_client()
    log.info("Sentry is on (environment %s)", environment)


def setup_sentry(settings: Settings) -> None:
    """At cog load: the host's Sentry if it has one (whatever BOT_SENTRY_DSN says: the
    extension's events go through it and must be scrubbed), else the extension's own when
    BOT_SENTRY_DSN is set, else none."""
    client = host_client()
    if client is not None:
        join_host_sentry(client, settings.secrets())
        log.info(
            "Sentry: using the host's client (release %s, environment %s)",
            client.options.get("release"),
            client.options.get("environment"),
        )
        return
    if settings.sentry_dsn is not None:
        init_sentry(
            settings.sentry_dsn.get_secret_value(), settings.sentry_environment, settings.secrets()
        )
