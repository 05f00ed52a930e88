"""No secret leaves the bot: the bot token, the site's API key and the Sentry DSN never show in
its logs, its Discord messages or its Sentry events, even when the site fails in every way."""

import logging
from urllib.parse import urlsplit

import pytest
import sentry_sdk

from bot.sandbox.site import DEFAULT_TOKEN, Fault, FaultConfig
from tests.e2e.harness import NO_STARTUP, running_bot, stale_site

pytestmark = pytest.mark.timeout(90)

DSN = "https://0123456789abcdef0123456789abcdef@sentry.invalid/4242"
DSN_KEY = urlsplit(DSN).username
"""The DSN's key part: what lets anyone send events to the project, even without the host."""


class EveryRecord(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


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
        secrets = {
            "bot token": h.discord.token,
            "site key": DEFAULT_TOKEN,
            "Sentry DSN": DSN,
            "Sentry DSN key": DSN_KEY,
        }
        await h.reply_to(h.say("!sync users"))
        summary = await h.wait_for_summary("User sync")
        assert summary.startswith("❌")
        await h.wait_for_log(lambda text: "invalid JSON" in text)
        assert any("could not be written after every retry" in t for t in h.log_texts())
        messages = [v.content for m in h.bot_messages() for v in m.versions]
        sentry_sdk.flush()

        # Every secret was in use, so not finding it below means something: the loopback
        # Discord accepted the token on the gateway (IDENTIFY) and on every REST call ...
        assert h.discord.gateway_stats.identifies >= 1
        assert sum(h.discord.rest_stats.calls.values()) > 0
        assert h.discord.rest_stats.unauthorized == 0
        # ... and the site answered user pages with 200 (a page is only broken on a 200, which
        # an unauthenticated request never gets), so the site key went out in the header.
        assert h.site.stats.faults[Fault.MALFORMED_PAGE.value] >= 1
        assert h.site.stats.faults[Fault.REJECTED_WRITE.value] >= 1

    # Each failure path ran, with its logging: the rejected write was retried ...
    retries = [
        line
        for line in every_log_line
        if line.startswith("guild_sync.site.client WARNING PATCH bot/users/bulk_patch: HTTP 500")
        and "retrying in" in line
    ]
    assert retries, "the rejected bulk_patch was not logged as retried"
    # ... and Sentry got events (so the DSN was in use) naming both failures.
    events = recorded_sentry.payloads()
    assert any("bot/users/bulk_patch" in event and "HTTP 500" in event for event in events)
    assert any("GET bot/users" in event and "invalid JSON" in event for event in events)

    # A substring check also catches a secret inside a wrapping: "Token <key>", "Bot <token>",
    # the DSN's key in another URL or a header dump.
    for name, secret in secrets.items():
        assert secret, name
        assert not [line for line in every_log_line if secret in line], f"{name} in the log"
        assert not [text for text in messages if secret in text], f"{name} in a message"
        assert not [event for event in events if secret in event], f"{name} in Sentry"
