"""Log lines go out through `setup_logging`'s redacting formatter with no secret in them."""

import logging

import pytest

from guild_sync.config import load_settings
from guild_sync.log import setup_logging

REDIS_PASSWORD = "hunter2-redis"
STATE_URL = f"redis://sync:{REDIS_PASSWORD}@redis:6379/0"


@pytest.fixture
def restore_root_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_state_url_password_is_redacted_from_log_lines(capsys, restore_root_logging):
    settings = load_settings({"SYNC_STATE_URL": STATE_URL, "BOT_TOKEN": "tok-1"}, env_file=None)
    setup_logging("INFO", settings.secrets())
    log = logging.getLogger("bot.test")
    log.info("journal at %s", settings.state_url)
    log.info("settings %r", settings)
    try:
        raise ConnectionError(f"Error connecting to {settings.state_url}")
    except ConnectionError:
        log.exception("the journal is unavailable")
    err = capsys.readouterr().err
    assert "journal at redis://sync:[redacted]@redis:6379/0" in err  # the line is there ...
    assert "Error connecting to redis://sync:[redacted]@redis:6379/0" in err  # ... traceback too
    assert REDIS_PASSWORD not in err  # ... without the password


def test_any_url_password_is_redacted_even_one_the_settings_do_not_know(
    capsys, restore_root_logging
):
    setup_logging("INFO", ())
    logging.getLogger("bot.test").warning(
        "redirected to https://someone:pa55-w0rd@elsewhere.example:8443/x and ws://a:b-c@h/"
    )
    err = capsys.readouterr().err
    assert "https://someone:[redacted]@elsewhere.example:8443/x" in err
    assert "ws://a:[redacted]@h/" in err
    assert "pa55-w0rd" not in err
