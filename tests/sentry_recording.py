"""A Sentry transport that keeps events in memory, so tests read what would have been sent."""

import pytest
import sentry_sdk
from sentry_sdk.transport import Transport


class RecordingTransport(Transport):
    def __init__(self, options=None):
        super().__init__(options)
        self.envelopes = []

    def capture_envelope(self, envelope):
        self.envelopes.append(envelope)

    def payloads(self) -> list[str]:
        return [item.payload.get_bytes().decode() for e in self.envelopes for item in e.items]


@pytest.fixture
def recorded_sentry(monkeypatch):
    """Every `sentry_sdk.init` in the test sends to one RecordingTransport (yielded)."""
    transport = RecordingTransport()
    real_init = sentry_sdk.init
    monkeypatch.setattr(
        sentry_sdk,
        "init",
        lambda *args, **kwargs: real_init(*args, **kwargs | {"transport": transport}),
    )
    yield transport
    sentry_sdk.get_client().close()
