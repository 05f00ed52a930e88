import subprocess
import sys

import pytest

from bot.config import FIELDS, MAX_CHUNK_SIZE, Secret, SettingsError, load_settings


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
    with pytest.raises(SettingsError) as info:
        settings(**{env: value})
    message = str(info.value)
    assert message.startswith(f"setting {env}: ")
    assert fragment in message
    assert "\n" not in message


def test_secrets_never_show_in_reprs_or_errors():
    s = settings(BOT_TOKEN="tok-123", API_KEYS_SITE_API="key-456", BOT_SENTRY_DSN="https://d@s/1")
    shown = repr(s) + str(s)
    for secret in ("tok-123", "key-456", "https://d@s/1"):
        assert secret not in shown
    assert s.bot_token == Secret("tok-123")
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
        env={"SYNC_CHUNK_SIZE": "0", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: setting SYNC_CHUNK_SIZE: must be between 1 and 5000 (got '0')"]
