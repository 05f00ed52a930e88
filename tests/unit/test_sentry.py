"""Sentry events leave the process with every secret scrubbed (recorded by a local transport)."""

import json
import logging

import sentry_sdk

from bot.engine.progress import ChunkDone, RunFinished
from bot.exts.sync.sentry import init_sentry
from bot.exts.sync.tracing import RunTrace, track_error
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
