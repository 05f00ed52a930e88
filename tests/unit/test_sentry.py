"""Sentry events leave the process with every secret scrubbed (recorded by a local transport)."""

import json
import logging

import sentry_sdk

from guild_sync.engine.progress import ChunkDone, RunFinished
from guild_sync.exts.sync._sentry import init_sentry
from guild_sync.exts.sync._tracing import RunTrace, track_error
from tests.sentry_recording import RecordingTransport

TOKEN, KEY, DSN = "tok.en-123", "site-key-456", "https://public@sentry.example/1"


async def test_events_and_transactions_are_scrubbed_and_tagged():
    transport = RecordingTransport()
    init_sentry(DSN, "test", [TOKEN, KEY, DSN], transport=transport)
    try:
        logging.getLogger("bot.test").error("request with Authorization: Token %s failed", KEY)
        try:
            raise RuntimeError(f"login with {TOKEN} refused")
        except RuntimeError:
            sentry_sdk.capture_exception()
        event_id = track_error(f"chunk failed for {TOKEN}", {"run_id": "r1"})
        trace = RunTrace("r1", "users", "startup")
        trace.feed(ChunkDone("r1", ok=True, items=1000, latency_s=0.2, in_flight=1))
        trace.feed(RunFinished("r1", "users", "startup", "finished"))
        sentry_sdk.flush()
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
    from guild_sync.config import load_settings

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
