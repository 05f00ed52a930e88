"""A Sentry transport that keeps events in memory, so tests read what would have been sent."""

from sentry_sdk.transport import Transport


class RecordingTransport(Transport):
    def __init__(self, options=None):
        super().__init__(options)
        self.envelopes = []

    def capture_envelope(self, envelope):
        self.envelopes.append(envelope)

    def payloads(self) -> list[str]:
        return [item.payload.get_bytes().decode() for e in self.envelopes for item in e.items]
