"""Sentry events leave the process with every secret scrubbed (recorded by a local transport)."""

import json
import logging

import discord
import pytest
import sentry_sdk
from discord.ext import commands
from sentry_sdk.integrations import Integration

from guild_sync.config import load_settings
from guild_sync.engine.progress import ChunkDone, RunFinished
from guild_sync.exts.sync._cog import SyncCog
from guild_sync.exts.sync._sentry import Scrubber, host_client, init_sentry
from guild_sync.exts.sync._tracing import RunTrace, track_error
from tests.sentry_recording import RecordingTransport

TOKEN, KEY, DSN = "tok.en-123", "site-key-456", "https://public@sentry.example/1"


async def test_events_and_transactions_are_scrubbed_and_tagged():
    transport = RecordingTransport()
    init_sentry(DSN, "test", [TOKEN, KEY, DSN], transport=transport)
    try:
        event_id = send_extension_events()
    finally:
        sentry_sdk.get_client().close()
    payloads = transport.payloads()
    assert event_id is not None
    assert len(payloads) >= 4
    everything = "\n".join(payloads)
    for secret in (TOKEN, KEY, DSN):
        assert secret not in everything
    assert "[redacted]" in everything
    transactions = [json.loads(p) for p in payloads if '"type":"transaction"' in p]
    assert transactions and transactions[0]["tags"]["run_id"] == "r1"
    assert transactions[0]["tags"]["trigger"] == "startup"
    assert [span["op"] for span in transactions[0]["spans"]] == ["sync.chunk"]


async def test_url_passwords_from_the_settings_are_scrubbed_from_events():
    password = "hunter2-redis"
    settings = load_settings(
        {"SYNC_STATE_URL": f"redis://:{password}@redis:6379/0", "BOT_SENTRY_DSN": DSN},
        env_file=None,
    )
    transport = RecordingTransport()
    init_sentry(DSN, "test", settings.secrets(), transport=transport)
    try:
        logging.getLogger("bot.test").error("journal %s unreachable", settings.state_url)
        state_url = settings.state_url  # a local variable, which Sentry sends with the frame
        try:
            raise ConnectionError(f"Error connecting to {state_url}")
        except ConnectionError:
            sentry_sdk.capture_exception()
        sentry_sdk.flush()
    finally:
        sentry_sdk.get_client().close()
    everything = "\n".join(transport.payloads())
    assert "redis://:[redacted]@redis:6379/0" in everything
    assert "Error connecting to" in everything
    assert password not in everything


# -- a host that initialised Sentry itself (python-discord/bot does, in bot/log.py) ----------

HOST_DSN = "https://hostpublic@sentry.example/2"
HOST_RELEASE = "host-bot@1.2.3"


class HostIntegration(Integration):
    """Stands for the host's own integrations, which a second `sentry_sdk.init` would drop."""

    identifier = "host_marker"

    @staticmethod
    def setup_once() -> None:
        pass


def host_sentry(transport: RecordingTransport, seen: list[str]):
    """The host's client, with a release, an integration and a before_send of its own that
    notes every event it sees and tags it, so a test can tell it still runs."""

    def before_send(event, hint):
        seen.append(event.get("event_id", "?"))
        event.setdefault("tags", {})["host_saw"] = "yes"
        return event

    sentry_sdk.init(
        dsn=HOST_DSN,
        release=HOST_RELEASE,
        integrations=[HostIntegration()],
        before_send=before_send,
        traces_sample_rate=1.0,
        transport=transport,
    )
    return sentry_sdk.get_client()


def cog_with(environ: dict[str, str]) -> SyncCog:
    settings = load_settings(
        {"BOT_TOKEN": TOKEN, "API_KEYS_SITE_API": KEY, "GUILD_ID": "1"} | environ, env_file=None
    )
    return SyncCog(commands.Bot(command_prefix="!", intents=discord.Intents.default()), settings)


def send_extension_events() -> str | None:
    """What the extension sends: an error log line, an exception, a tracked error, a run's
    transaction; each holding a secret."""
    logging.getLogger("guild_sync.test").error("request with Authorization: Token %s failed", KEY)
    try:
        raise RuntimeError(f"login with {TOKEN} refused")
    except RuntimeError:
        sentry_sdk.capture_exception()
    event_id = track_error(f"chunk failed for {TOKEN}", {"run_id": "r1"})
    trace = RunTrace("r1", "users", "startup")
    trace.feed(ChunkDone("r1", ok=True, items=1000, latency_s=0.2, in_flight=1))
    trace.feed(RunFinished("r1", "users", "startup", "finished"))
    sentry_sdk.flush()
    return event_id


@pytest.mark.parametrize("extension_dsn", [DSN, None], ids=["extension-dsn", "no-extension-dsn"])
async def test_a_host_client_keeps_its_release_and_integrations_and_scrubs_our_events(
    extension_dsn,
):
    transport, seen = RecordingTransport(), []
    host = host_sentry(transport, seen)
    environ = {"BOT_SENTRY_DSN": extension_dsn} if extension_dsn else {}
    cog = cog_with(environ)
    try:
        await cog.cog_load()
        client = sentry_sdk.get_client()
        assert client is host, "the cog replaced the host's client"
        assert client.options["release"] == HOST_RELEASE
        assert client.options["dsn"] == HOST_DSN
        assert "host_marker" in client.integrations
        assert client.transport is transport

        event_id = send_extension_events()
    finally:
        await cog.cog_unload()
        sentry_sdk.get_client().close()

    payloads = transport.payloads()
    everything = "\n".join(payloads)
    assert event_id is not None and len(seen) >= 3, "the host's before_send no longer runs"
    for secret in (TOKEN, KEY, DSN):
        assert secret not in everything
    assert "[redacted]" in everything
    events = [json.loads(p) for p in payloads if p.startswith("{")]
    errors = [e for e in events if e.get("type") != "transaction" and "event_id" in e]
    assert errors and all(e["release"] == HOST_RELEASE for e in errors)
    assert all(e["tags"]["host_saw"] == "yes" for e in errors)
    tracked = [e for e in errors if e.get("event_id") == event_id]
    assert tracked and tracked[0]["tags"]["run_id"] == "r1"
    transactions = [e for e in events if e.get("type") == "transaction"]
    assert transactions and transactions[0]["tags"]["kind"] == "users"
    assert transactions[0]["release"] == HOST_RELEASE


async def test_loading_the_extension_again_does_not_stack_its_scrubbing_on_the_host():
    transport, seen = RecordingTransport(), []
    host = host_sentry(transport, seen)
    first, second = cog_with({}), cog_with({"SYNC_STATE_URL": "redis://:hunter2@redis:6379/0"})
    try:
        await first.cog_load()
        await first.cog_unload()
        await second.cog_load()
        scrubber = host.options["before_send"]
        assert isinstance(scrubber, Scrubber) and not isinstance(scrubber.first, Scrubber)
        logging.getLogger("guild_sync.test").error("key %s, password hunter2", KEY)
        sentry_sdk.flush()
    finally:
        await second.cog_unload()
        sentry_sdk.get_client().close()
    everything = "\n".join(transport.payloads())
    assert len(seen) == 1, "the host's before_send ran more than once for one event"
    assert "key [redacted], password [redacted]" in everything


async def test_without_a_host_client_the_cog_starts_sentry_with_its_dsn_as_before(
    recorded_sentry,
):
    assert host_client() is None
    cog = cog_with({"BOT_SENTRY_DSN": DSN, "BOT_SENTRY_ENVIRONMENT": "staging"})
    try:
        await cog.cog_load()
        client = sentry_sdk.get_client()
        assert client.is_active() and client.transport is recorded_sentry
        assert client.options["dsn"] == DSN
        assert client.options["environment"] == "staging"
        assert {"asyncio", "aiohttp", "logging"} <= set(client.integrations)
        assert isinstance(client.options["before_send"], Scrubber)
        event_id = send_extension_events()
    finally:
        await cog.cog_unload()
    everything = "\n".join(recorded_sentry.payloads())
    assert event_id is not None
    for secret in (TOKEN, KEY, DSN):
        assert secret not in everything
    assert "[redacted]" in everything
    assert '"environment":"staging"' in everything


async def test_without_a_host_client_or_a_dsn_sentry_stays_off():
    assert host_client() is None
    cog = cog_with({})
    try:
        await cog.cog_load()
        assert host_client() is None
        assert track_error("nothing to send", {}) is None
    finally:
        await cog.cog_unload()
