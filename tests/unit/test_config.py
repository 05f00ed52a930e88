import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from guild_sync.config import FIELDS, MAX_CHUNK_SIZE, SettingsError, load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""Where `python -m bot` is found: the runnable bot is run from a checkout, not installed."""


def settings(**env: str):
    return load_settings(env, env_file=None)


def test_defaults_are_valid_and_match_the_contract():
    s = settings()
    assert s.bot_token is None
    assert s.prefix == "!"
    assert s.chunk_size == 1000
    assert s.page_size == 2500
    assert s.site_api_url == "http://site:8000/api"


@pytest.mark.parametrize(
    ("env", "value", "fragment"),
    [
        ("GUILD_ID", "abc", "whole number"),
        ("GUILD_ID", "-5", "between 1 and"),
        ("SYNC_CHUNK_SIZE", "0", f"between 1 and {MAX_CHUNK_SIZE}"),
        ("SYNC_CHUNK_SIZE", str(MAX_CHUNK_SIZE + 1), f"between 1 and {MAX_CHUNK_SIZE}"),
        ("SYNC_MAX_IN_FLIGHT", "0", "between 1 and"),
        ("URLS_SITE_API", "site:8000/api", "http:// or https://"),
        ("URLS_SITE_API", "ftp://site/api", "http:// or https://"),
        ("SYNC_STATE_URL", "postgres://x", "sqlite:///"),
        ("SYNC_GUARD_LEFT_SHARE", "1.5", "between 0 and 1"),
        ("SYNC_GUARD_LEFT_SHARE", "nan", "between 0 and 1"),
        ("SYNC_MODERATOR_ROLE_IDS", "1,two", "whole number"),
        ("LOG_LEVEL", "LOUD", "DEBUG, INFO"),
        ("SYNC_STARTUP", "maybe", "true or false"),
    ],
)
def test_bad_values_name_the_setting_in_one_line(env, value, fragment):
    one_line_error(env, value, fragment)


def one_line_error(env: str, value: str, fragment: str) -> str:
    """The start-up error for a bad value: one line, naming the setting and what is wrong."""
    with pytest.raises(SettingsError) as info:
        settings(**{env: value})
    message = str(info.value)
    assert message.startswith(f"setting {env}: ")
    assert fragment in message
    assert "\n" not in message
    return message


def test_secrets_never_show_in_reprs_or_errors():
    s = settings(BOT_TOKEN="tok-123", API_KEYS_SITE_API="key-456", BOT_SENTRY_DSN="https://d@s/1")
    shown = repr(s) + str(s)
    for secret in ("tok-123", "key-456", "https://d@s/1"):
        assert secret not in shown
    assert s.bot_token == SecretStr("tok-123")
    assert sorted(s.secrets()) == sorted(["tok-123", "key-456", "https://d@s/1"])
    with pytest.raises(SettingsError) as info:
        settings(API_KEYS_SITE_API=" ")
    assert info.value.args[0] == "setting API_KEYS_SITE_API: must not be empty"


def test_environment_wins_over_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SYNC_CHUNK_SIZE=500\nBOT_PREFIX='?'\n")
    s = load_settings({"SYNC_CHUNK_SIZE": "250"}, env_file=env_file)
    assert s.chunk_size == 250
    assert s.prefix == "?"


def test_the_process_environment_wins_over_env_file_unless_a_mapping_replaces_it(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("BOT_TOKEN", "from-the-process")
    monkeypatch.setenv("SYNC_CHUNK_SIZE", "250")
    env_file = tmp_path / ".env"
    env_file.write_text("SYNC_CHUNK_SIZE=500\nSYNC_MODERATOR_ROLE_IDS=1, 2\n")
    s = load_settings(env_file=env_file)
    assert (s.bot_token, s.chunk_size, s.moderator_role_ids) == (
        SecretStr("from-the-process"),
        250,
        (1, 2),  # a list setting is read as written, not as JSON
    )
    assert settings().bot_token is None  # an explicit mapping replaces os.environ whole


def test_moderator_roles_accept_commas_and_spaces():
    assert settings(SYNC_MODERATOR_ROLE_IDS="1, 2,3").moderator_role_ids == (1, 2, 3)


def test_the_bot_needs_a_guild_and_a_log_channel():
    with pytest.raises(SettingsError, match="setting GUILD_ID: must be set"):
        settings(BOT_TOKEN="x").check_bot_ready()
    settings(BOT_TOKEN="x", GUILD_ID="1", SYNC_LOG_CHANNEL_ID="2").check_bot_ready()


def test_every_field_has_help_text():
    assert all(field.help for field in FIELDS)


def test_bad_setting_exits_non_zero_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        env={"SYNC_CHUNK_SIZE": "0", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: setting SYNC_CHUNK_SIZE: must be between 1 and 5000 (got '0')"]


# -- credentials inside URL settings (issue 13, defect 9) -------------------------------------

REDIS_PASSWORD = "hunter2-redis"


@pytest.mark.parametrize(
    ("url", "shown", "hidden"),
    [
        (f"redis://:{REDIS_PASSWORD}@host:6379/0", "redis://:***@host:6379/0", [REDIS_PASSWORD]),
        ("redis://sync:s3cr%40t@host/1", "redis://sync:***@host/1", ["s3cr%40t", "s3cr@t"]),
        ("rediss://token-only-xyz@host/2", "rediss://***@host/2", ["token-only-xyz"]),
        ("redis://host/0?password=q-pass-77", "redis://host/0?password=***", ["q-pass-77"]),
        ("redis://:pa/ss-odd@host/0", "redis://:***@host/0", ["pa/ss-odd"]),
    ],
)
def test_state_url_password_never_shows_but_reaches_the_store(url, shown, hidden):
    s = settings(SYNC_STATE_URL=url)
    assert s.state_url == url  # the journal gets the real URL ...
    text = repr(s) + str(s) + repr(s.state_url) + f"{s!r}"
    assert shown in text  # ... every repr shows it masked ...
    for secret in hidden:
        assert secret not in text
        assert secret in s.secrets()  # ... and the log/Sentry scrubbers know the password


def test_redis_gets_the_real_password_from_the_state_url():
    import redis.asyncio as aioredis

    s = settings(SYNC_STATE_URL=f"redis://sync:{REDIS_PASSWORD}@host:6379/0")
    kwargs = aioredis.from_url(s.state_url).connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("sync", REDIS_PASSWORD)


def test_urls_without_credentials_are_unchanged():
    s = settings(SYNC_STATE_URL="redis://redis:6379/0")
    assert "state_url='redis://redis:6379/0'" in repr(s)
    assert "site_api_url='http://site:8000/api'" in repr(s)
    assert s.secrets() == [s.site_api_key.get_secret_value()]


@pytest.mark.parametrize(
    ("env", "value", "fragment"),
    [
        ("SYNC_STATE_URL", f"postgres://u:{REDIS_PASSWORD}@db/x", "postgres://u:***@db/x"),
        ("SYNC_STATE_URL", f"mysql://:{REDIS_PASSWORD}@db/x", "mysql://:***@db/x"),
        ("URLS_SITE_API", f"ftp://bot:{REDIS_PASSWORD}@site/api", "ftp://bot:***@site/api"),
        ("URLS_SITE_API", f"https://bot:{REDIS_PASSWORD}@[::1", "Invalid IPv6 URL"),
        (
            "SYNC_STATE_URL",
            f"postgres://u:{'x' * 42}{REDIS_PASSWORD}@db/x",
            "must start with sqlite:///",
        ),
    ],
)
def test_bad_url_errors_never_echo_the_password(env, value, fragment):
    message = one_line_error(env, value, fragment)
    assert REDIS_PASSWORD not in message
    assert REDIS_PASSWORD[:4] not in message  # not even cut short by the length limit


@pytest.mark.parametrize("env", ["URLS_SITE_API", "DISCORD_API_URL"])
def test_http_urls_with_credentials_are_refused_at_start_up(env):
    """The site (and Discord) authenticate with a token in the Authorization header; aiohttp will
    not also send Basic credentials from the URL, so every request would fail at run time."""
    with pytest.raises(SettingsError) as info:
        settings(**{env: f"https://bot:{REDIS_PASSWORD}@site/api"})
    message = str(info.value)
    assert message.startswith(f"setting {env}: must not contain a user or password")
    assert "https://bot:***@site/api" in message
    assert REDIS_PASSWORD not in message


def test_gateway_url_password_is_masked():
    s = settings(DISCORD_GATEWAY_URL=f"ws://u:{REDIS_PASSWORD}@127.0.0.1:1/gw")
    assert s.discord_gateway_url == f"ws://u:{REDIS_PASSWORD}@127.0.0.1:1/gw"
    assert REDIS_PASSWORD not in repr(s)
    assert REDIS_PASSWORD in s.secrets()


def test_bad_state_url_exits_2_with_one_line_and_no_password(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        env={
            "SYNC_STATE_URL": f"postgres://u:{REDIS_PASSWORD}@db/x",
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(PROJECT_ROOT),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert REDIS_PASSWORD not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines() == [
        "error: setting SYNC_STATE_URL: must start with sqlite:/// or redis:// "
        "(got 'postgres://u:***@db/x')"
    ]


def test_the_update_guard_share_defaults_to_a_quarter_and_is_checked():
    assert settings().guard_update_share == 0.25
    assert settings(SYNC_GUARD_UPDATE_SHARE="0.5").guard_update_share == 0.5
    with pytest.raises(SettingsError, match=r"^setting SYNC_GUARD_UPDATE_SHARE: must be between"):
        settings(SYNC_GUARD_UPDATE_SHARE="2")
