"""No secret leaves the bot: the bot token, the site's API key and the Sentry DSN never show in
its logs, its Discord messages or its Sentry events, even when the site fails in every way."""

import logging

import pytest
import sentry_sdk

from bot.sandbox.site import DEFAULT_TOKEN, FaultConfig
from tests.e2e.harness import NO_STARTUP, running_bot, stale_site
from tests.sentry_recording import RecordingTransport

pytestmark = pytest.mark.timeout(90)

DSN = "https://0123456789abcdef0123456789abcdef@sentry.invalid/4242"


class EveryRecord(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def recorded_sentry(monkeypatch):
    transport = RecordingTransport()
    real_init = sentry_sdk.init
    monkeypatch.setattr(
        sentry_sdk,
        "init",
        lambda *args, **kwargs: real_init(*args, **kwargs | {"transport": transport}),
    )
    yield transport
    sentry_sdk.get_client().close()


@pytest.fixture
def every_log_line():
    handler = EveryRecord()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(level)


async def test_no_secret_in_logs_messages_or_sentry_events_when_the_site_fails(
    tmp_path, recorded_sentry, every_log_line
):
    faults = FaultConfig(reject_writes=True, malformed_pages="invalid_json", malformed_from_page=2)
    settings = NO_STARTUP | {
        "BOT_SENTRY_DSN": DSN,
        "SYNC_RETRY_ATTEMPTS": "2",
        "SYNC_PAGE_SIZE": "40",
    }
    async with running_bot(
        tmp_path,
        members=100,
        seed_site=False,
        prepare=stale_site(),
        faults=faults,
        settings=settings,
    ) as h:
        secrets = {"bot token": h.discord.token, "site key": DEFAULT_TOKEN, "Sentry DSN": DSN}
        await h.reply_to(h.say("!sync users"))
        summary = await h.wait_for_summary("User sync")
        assert summary.startswith("❌")
        await h.wait_for_log(lambda text: "invalid JSON" in text)
        assert any("could not be written after every retry" in t for t in h.log_texts())
        messages = [v.content for m in h.bot_messages() for v in m.versions]
        sentry_sdk.flush()
    events = recorded_sentry.payloads()
    assert events, "the failures reached Sentry"
    assert any("Authorization" in line or "retrying" in line for line in every_log_line)
    for name, secret in secrets.items():
        assert secret, name
        assert not [line for line in every_log_line if secret in line], f"{name} in the log"
        assert not [text for text in messages if secret in text], f"{name} in a message"
        assert not [event for event in events if secret in event], f"{name} in Sentry"
