import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import PlainValidator, SecretStr

from guild_sync.config import (
    FIELDS,
    MAX_CHUNK_SIZE,
    Setting,
    Settings,
    SettingsError,
    load_settings,
)

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


# -- a bad value of every type of setting stops start-up with one line (issue 18) ------------

MARKER = "mark3r-s3cret-18"
"""In every secret the CLI runs below are given, and in every bad value that can carry one
(a password in a URL, a DSN): no output may show it."""
ABOVE_MAXIMUM = "(the field's maximum + 1)"
"""The bad value of a range type: each field's own bounds (see `bad_value`)."""


@dataclass(frozen=True)
class SettingType:
    """One way a setting's text is read: the settings read that way, a bad value and what its
    error says, or no bad value for a type that takes any text (and a test that it does)."""

    covers: tuple[str, ...]
    bad: str | None
    fragment: str = ""


RANGES = ("SYNC_CHUNK_SIZE", "SYNC_MAX_IN_FLIGHT", "SYNC_PAGE_SIZE", "SYNC_RETRY_ATTEMPTS")
TIMES = ("SYNC_REQUEST_TIMEOUT", "SYNC_CHUNKING_TIMEOUT", "SYNC_PROGRESS_INTERVAL")
SHARES = ("SYNC_GUARD_LEFT_SHARE", "SYNC_GUARD_UPDATE_SHARE", "SYNC_GUARD_ROLE_DELETE_SHARE")
TYPES = {
    "Discord id or empty": SettingType(
        ("GUILD_ID", "SYNC_LOG_CHANNEL_ID"), "12abc", "must be a Discord id"
    ),
    "Discord id list": SettingType(("SYNC_MODERATOR_ROLE_IDS",), "1, two", "must be a Discord id"),
    "command prefix": SettingType(("BOT_PREFIX",), "!" * 11, "must be 1 to 10 characters"),
    "http(s) URL": SettingType(
        ("URLS_SITE_API",), f"https://bot:{MARKER}@site/api", "must not contain a user or"
    ),
    "http(s) URL or empty": SettingType(
        ("DISCORD_API_URL",), "ftp://discord.invalid/api", "must be an http:// or https:// URL"
    ),
    "journal URL": SettingType(
        ("SYNC_STATE_URL",), f"postgres://u:{MARKER}@db/x", "must start with sqlite:///"
    ),
    "secret": SettingType(("API_KEYS_SITE_API",), " ", "must not be empty"),
    "Sentry DSN or empty": SettingType(
        ("BOT_SENTRY_DSN",), f"https://sentry.invalid/{MARKER}", "must be a Sentry DSN"
    ),
    "whole number in a range": SettingType(
        (*RANGES, "SYNC_BREAKER_THRESHOLD"), ABOVE_MAXIMUM, "must be between 1 and"
    ),
    "whole number in a range or empty": SettingType(
        ("SYNC_METRICS_PORT",), ABOVE_MAXIMUM, "must be between 1 and 65535"
    ),
    "number in a range": SettingType(
        (*TIMES, "SYNC_GUARD_TIMEOUT"), ABOVE_MAXIMUM, "must be between 1 and"
    ),
    "share": SettingType(SHARES, ABOVE_MAXIMUM, "must be between 0 and 1"),
    "hours": SettingType(
        ("SYNC_RECONCILE_INTERVAL",), "-1", "must be a number of hours between 0 (off) and 720"
    ),
    "true or false": SettingType(
        ("SYNC_PREFIX_COMMANDS", "SYNC_STARTUP"), "maybe", "must be true or false"
    ),
    "log level": SettingType(("LOG_LEVEL",), "LOUD", "must be DEBUG, INFO, WARNING"),
    "IP address": SettingType(("SYNC_METRICS_HOST",), "localhost", "must be an IP address"),
    # Any text: Discord checks the token at login ("Discord refused the bot token").
    "secret or empty": SettingType(("BOT_TOKEN",), None),
    # Any text: the label Sentry files events under.
    "free text": SettingType(("BOT_SENTRY_ENVIRONMENT",), None),
    # Any text: sandbox only, handed to discord.py's gateway client as written.
    "any URL": SettingType(("DISCORD_GATEWAY_URL",), None),
}
"""Every type of setting, the settings of each, and how a bad value of it is refused."""

PARSERS = {
    "_snowflake": "Discord id",
    "_snowflakes": "Discord id list",
    "_prefix": "command prefix",
    "_http_url": "http(s) URL",
    "_state_url": "journal URL",
    "_required_secret": "secret",
    "_sentry_dsn": "Sentry DSN",
    "_hours": "hours",
    "_bool": "true or false",
    "_log_level": "log level",
    "_listen_address": "IP address",
    "_url": "any URL",
    "<lambda>": "free text",
}
"""The config's parsers by name; `_between`'s closures are named by their kind and bounds."""


def _closure(func: Callable[..., Any]) -> dict[str, Any]:
    names, cells = func.__code__.co_freevars, func.__closure__ or ()
    return {name: cell.cell_contents for name, cell in zip(names, cells, strict=True)}


def _parser(field: Setting) -> tuple[Callable[..., Any], bool]:
    """The function that reads the field's text, and whether an empty value is allowed."""
    [validator] = [
        m for m in Settings.model_fields[field.attr].metadata if isinstance(m, PlainValidator)
    ]
    if validator.func.__qualname__.startswith("_optional."):
        return _closure(validator.func)["parse"], True
    return validator.func, False


def type_of(field: Setting) -> str:
    """The field's type, as TYPES names it (an unknown parser gets a name TYPES lacks)."""
    parse, optional = _parser(field)
    if parse.__qualname__.startswith("_between."):
        bounds = _closure(parse)
        if (bounds["kind"], bounds["low"], bounds["high"]) == (float, 0, 1):
            name = "share"
        else:
            name = f"{'whole number' if bounds['kind'] is int else 'number'} in a range"
    else:
        name = PARSERS.get(parse.__qualname__, f"unknown parser {parse.__qualname__}")
    return f"{name} or empty" if optional else name


def bad_value(field: Setting) -> str:
    bad = TYPES[type_of(field)].bad
    assert bad is not None, f"{field.env} takes any value"
    if bad == ABOVE_MAXIMUM:
        return f"{_closure(_parser(field)[0])['high'] + 1:g}"
    return bad


def fields_of(name: str) -> list[Setting]:
    return [field for field in FIELDS if type_of(field) == name]


REJECTING = [field for field in FIELDS if TYPES.get(type_of(field), SettingType((), "?")).bad]
ACCEPTING = [field for field in FIELDS if field not in REJECTING]


def test_every_setting_is_of_a_type_with_a_case_and_each_case_says_what_it_covers():
    """A new type of setting (a new parser, new bounds' kind, an optional one) fails here
    until TYPES says how a bad value of it is refused, and a new setting until its type lists
    it: neither can go untested."""
    untyped = {field.env: type_of(field) for field in FIELDS if type_of(field) not in TYPES}
    assert untyped == {}
    found = {name: tuple(field.env for field in fields_of(name)) for name in TYPES}
    assert found == {name: kind.covers for name, kind in TYPES.items()}


@pytest.mark.parametrize("field", REJECTING, ids=lambda field: field.env)
def test_a_bad_value_of_every_setting_names_it_in_one_line(field: Setting):
    message = one_line_error(field.env, bad_value(field), TYPES[type_of(field)].fragment)
    assert MARKER not in message


@pytest.mark.parametrize("field", ACCEPTING, ids=lambda field: field.env)
def test_the_settings_that_take_any_text_take_it(field: Setting):
    """If one of these gains a check, it belongs in TYPES with a bad value."""
    value = getattr(settings(**{field.env: " odd value, ünïcode "}), field.attr)
    shown = value.get_secret_value() if isinstance(value, SecretStr) else value
    assert shown.strip() == "odd value, ünïcode"


def cli_environment(env: str, value: str) -> dict[str, str]:
    """`python -m bot run`'s environment: nothing of this process's, every secret set (with
    the marker) so a leak shows, and the bad value."""
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(PROJECT_ROOT),
        "BOT_TOKEN": f"tok-{MARKER}",
        "API_KEYS_SITE_API": f"key-{MARKER}",
        "BOT_SENTRY_DSN": f"https://{MARKER}@sentry.invalid/1",
        "SYNC_STATE_URL": f"redis://:{MARKER}@redis:6379/0",
        env: value,
    }


CLI_CASES = {name: fields_of(name)[0] for name, kind in TYPES.items() if kind.bad is not None}
"""One `python -m bot run` per type that can be bad, for its first field (the in-process test
above covers every field of it)."""


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_a_bad_value_of_each_type_stops_the_bot_with_one_line(name: str, tmp_path: Path) -> None:
    field = CLI_CASES[name]
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        env=cli_environment(field.env, bad_value(field)),
        cwd=tmp_path,  # no .env here
        capture_output=True,
        text=True,
        timeout=120,  # about a second alone; only so a hung start-up fails
        check=False,
    )
    lines = result.stderr.strip().splitlines()
    assert (result.returncode, result.stdout, len(lines)) == (2, "", 1), result
    assert lines[0].startswith(f"error: setting {field.env}: "), lines
    assert TYPES[name].fragment in lines[0], lines
    assert MARKER not in result.stdout + result.stderr
