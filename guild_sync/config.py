"""Settings from the environment and an optional `.env` file, validated once at start-up.

One table (`FIELDS`) names every setting, its parser, default and meaning, so start-up errors,
`.env.example` and the operator docs cannot drift apart. A bad value stops start-up with one line
naming the setting (`SettingsError`), and secrets are wrapped in `Secret` so no repr, log line or
traceback can show them.

URL settings are `SecretURL`s: the real URL (a `str`) for the code that connects, with its
credentials (a password, a token-only userinfo, a `?password=`) masked as `***` in every repr
and in start-up errors, and listed by `Settings.secrets()` so the log and Sentry scrubbers hide
them too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

from dotenv import dotenv_values

MAX_CHUNK_SIZE = 5000
MAX_IN_FLIGHT = 16
MAX_RECONCILE_HOURS = 720
UPSTREAM_DEV_SITE_KEY = "badbot13m0n8f570f942013fc818f234916ca531"


class SettingsError(ValueError):
    """A setting that cannot be used; the message is one line and names the setting."""


class Secret:
    """A string that never shows itself in a repr, str or f-string."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


MASK = "***"
_QUERY_PASSWORD = re.compile(r"([?&;]password=)([^&;#]*)", re.IGNORECASE)


def mask_url(url: str) -> tuple[str, tuple[str, ...]]:
    """`url` with its credentials masked, and those credentials as written and as decoded.

    The userinfo runs to the last `@` of the authority; when a password holds a raw `/`, `?` or
    `#` (which a URL parser would split in the wrong place) it runs to the last `@` of the URL, so
    an odd URL errs towards hiding too much. A userinfo with no `:` is taken as a token.
    """
    found: list[str] = []
    head, sep, rest = url.partition("://")
    if sep:
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        at = authority.rfind("@")
        if at < 0 and ":" in rest[: max(rest.rfind("@"), 0)]:
            at = rest.rfind("@")
        if at >= 0:
            user, colon, password = rest[:at].partition(":")
            secret, shown = (password, f"{user}:{MASK}") if colon else (user, MASK)
            if secret:
                found += [secret, unquote(secret)]
                rest = f"{shown}@{rest[at + 1 :]}"

    def hide_query_password(match: re.Match[str]) -> str:
        found.extend([match[2], unquote_plus(match[2])])
        return match[1] + MASK if match[2] else match[0]

    rest = _QUERY_PASSWORD.sub(hide_query_password, rest)
    return head + sep + rest, tuple(dict.fromkeys(s for s in found if s))


class SecretURL(str):
    """A URL setting: the real URL for the code that connects, its credentials masked in reprs.

    It is a `str`, so the journal (Redis) and the site client use it unchanged; `repr()` (and so
    the repr of `Settings`, `%r` and tracebacks) shows `redacted()`, and `credentials` feeds the
    log and Sentry scrubbers.
    """

    __slots__ = ()

    def redacted(self) -> str:
        return mask_url(self)[0]

    @property
    def credentials(self) -> tuple[str, ...]:
        return mask_url(self)[1]

    def __repr__(self) -> str:
        return repr(self.redacted())


# -- parsers: each takes the raw text and returns the value or raises ValueError(reason) --------


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip().replace("_", ""))
        except ValueError:
            raise ValueError("must be a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _float_between(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("must be a number") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return parse


def _hours(high: float) -> Callable[[str], float]:
    """Hours, fractions allowed (0.5 is 30 minutes); 0 means off."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("must be a number of hours") from None
        if not 0 <= value <= high:  # NaN fails this too
            raise ValueError(f"must be a number of hours between 0 (off) and {high:g}")
        return value

    return parse


def _snowflake(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError("must be a Discord id (a whole number)") from None
    if not 0 < value < 2**63:
        raise ValueError("must be a Discord id between 1 and 2^63-1")
    return value


def _optional_snowflake(text: str) -> int | None:
    return _snowflake(text) if text.strip() else None


def _snowflakes(text: str) -> tuple[int, ...]:
    return tuple(_snowflake(part) for part in text.replace(" ", ",").split(",") if part)


def _http_url(text: str) -> SecretURL:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        # The site (and Discord) take a token in the Authorization header; HTTP has room for one,
        # so aiohttp refuses to add Basic credentials from the URL and every request would fail.
        raise ValueError(
            "must not contain a user or password; requests carry their token in the "
            "Authorization header"
        )
    return SecretURL(text.strip().rstrip("/"))


def _optional_http_url(text: str) -> SecretURL | None:
    return _http_url(text) if text.strip() else None


def _state_url(text: str) -> SecretURL:
    scheme = urlsplit(text.strip()).scheme
    if scheme not in ("sqlite", "redis", "rediss"):
        raise ValueError("must start with sqlite:/// or redis://")
    return SecretURL(text.strip())


def _url_text(text: str) -> SecretURL:
    return SecretURL(text.strip())


def _secret(text: str) -> Secret | None:
    return Secret(text.strip()) if text.strip() else None


def _required_secret(text: str) -> Secret:
    if not text.strip():
        raise ValueError("must not be empty")
    return Secret(text.strip())


def _prefix(text: str) -> str:
    if not text or text.isspace() or len(text) > 10:
        raise ValueError("must be 1 to 10 characters, not only spaces")
    return text


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def _text(text: str) -> str:
    return text.strip()


@dataclass(frozen=True)
class Field:
    env: str
    attr: str
    parse: Callable[[str], Any]
    default: str
    help: str
    secret: bool = False


FIELDS: tuple[Field, ...] = (
    Field("BOT_TOKEN", "bot_token", _secret, "",
          "Discord bot token; empty runs the sandbox demo", True),
    Field("GUILD_ID", "guild_id", _optional_snowflake, "",
          "The guild to sync (needed with a token)"),
    Field("SYNC_LOG_CHANNEL_ID", "log_channel_id", _optional_snowflake, "",
          "Channel for live progress and every sync error (needed with a token)"),
    Field("SYNC_MODERATOR_ROLE_IDS", "moderator_role_ids", _snowflakes, "",
          "Comma-separated role ids allowed to run !sync (administrators always are)"),
    Field("BOT_PREFIX", "prefix", _prefix, "!", "Command prefix"),
    Field("URLS_SITE_API", "site_api_url", _http_url, "http://site:8000/api",
          "The site's API base URL, without a user or password (the token authenticates)"),
    Field("API_KEYS_SITE_API", "site_api_key", _required_secret, UPSTREAM_DEV_SITE_KEY,
          "The site's API token (Authorization: Token ...)", True),
    Field("SYNC_CHUNK_SIZE", "chunk_size", _int_between(1, MAX_CHUNK_SIZE), "1000",
          f"Users per site request, at most {MAX_CHUNK_SIZE}; the site slows past 1000"),
    Field("SYNC_MAX_IN_FLIGHT", "max_in_flight", _int_between(1, MAX_IN_FLIGHT), "2",
          "Most site requests at once; the sender adapts below this"),
    Field("SYNC_PAGE_SIZE", "page_size", _int_between(1, 10000), "2500",
          "Users per page when reading the site"),
    Field("SYNC_REQUEST_TIMEOUT", "request_timeout", _float_between(1, 900), "120",
          "Seconds before one site request is abandoned and retried"),
    Field("SYNC_RETRY_ATTEMPTS", "retry_attempts", _int_between(1, 20), "5",
          "Attempts per site request before the chunk is reported failed"),
    Field("SYNC_STATE_URL", "state_url", _state_url, "sqlite:///data/sync-state.sqlite3",
          "Run journal and lock store: sqlite:///path or redis://[:password@]host:port/db"),
    Field("SYNC_STARTUP", "startup_sync", _bool, "true", "Run a roles-then-users sync at start-up"),
    Field("SYNC_RECONCILE_INTERVAL", "reconcile_interval", _hours(MAX_RECONCILE_HOURS), "6",
          "Hours between background roles-then-users syncs that repair drift (each wait ±5%, "
          "fractions allowed); 0 turns them off"),
    Field("SYNC_CHUNKING_TIMEOUT", "chunking_timeout", _float_between(1, 3600), "300",
          "Seconds to wait for the guild's member list before saying in the log channel that it "
          "is late"),
    Field("SYNC_PROGRESS_INTERVAL", "progress_interval", _float_between(1, 300), "5",
          "Seconds between edits of a run's live message (Discord allows 5 per 5 s)"),
    Field("SYNC_GUARD_LEFT_SHARE", "guard_left_share", _float_between(0, 1), "0.10",
          "An automatic run marking more than this share of users as left asks a moderator first"),
    Field("SYNC_GUARD_UPDATE_SHARE", "guard_update_share", _float_between(0, 1), "0.25",
          "An automatic run writing any one field for more than this share of users asks a "
          "moderator first"),
    Field("SYNC_GUARD_ROLE_DELETE_SHARE", "guard_role_delete_share", _float_between(0, 1), "0.10",
          "An automatic run deleting more than this share of roles asks a moderator first"),
    Field("SYNC_GUARD_TIMEOUT", "guard_timeout", _float_between(1, 86400), "900",
          "Seconds the guard's confirmation waits before it cancels"),
    Field("SYNC_BREAKER_THRESHOLD", "breaker_threshold", _int_between(1, 100), "3",
          "Consecutive failed automatic runs before automatic runs stop"),
    Field("BOT_SENTRY_DSN", "sentry_dsn", _secret, "", "Sentry DSN; empty disables Sentry", True),
    Field("BOT_SENTRY_ENVIRONMENT", "sentry_environment", _text, "production",
          "Sentry environment name"),
    Field("LOG_LEVEL", "log_level", _log_level, "INFO", "Logging level"),
    Field("DISCORD_API_URL", "discord_api_url", _optional_http_url, "",
          "Sandbox only: a loopback Discord REST base; empty means discord.com"),
    Field("DISCORD_GATEWAY_URL", "discord_gateway_url", _url_text, "",
          "Sandbox only: a loopback Discord gateway URL; empty means Discord's"),
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    bot_token: Secret | None
    guild_id: int | None
    log_channel_id: int | None
    moderator_role_ids: tuple[int, ...]
    prefix: str
    site_api_url: SecretURL
    site_api_key: Secret
    chunk_size: int
    max_in_flight: int
    page_size: int
    request_timeout: float
    retry_attempts: int
    state_url: SecretURL
    startup_sync: bool
    reconcile_interval: float
    chunking_timeout: float
    progress_interval: float
    guard_left_share: float
    guard_update_share: float
    guard_role_delete_share: float
    guard_timeout: float
    breaker_threshold: int
    sentry_dsn: Secret | None
    sentry_environment: str
    log_level: str
    discord_api_url: SecretURL | None
    discord_gateway_url: SecretURL

    def check_bot_ready(self) -> None:
        """Settings the real bot cannot run without (the sandbox fills them in itself)."""
        for env, value in (
            ("GUILD_ID", self.guild_id),
            ("SYNC_LOG_CHANNEL_ID", self.log_channel_id),
        ):
            if value is None:
                raise SettingsError(f"setting {env}: must be set to run the bot")

    def secrets(self) -> list[str]:
        """Every secret's plain value and every URL setting's credentials, for the scrubbers."""
        values = [getattr(self, f.attr) for f in FIELDS]
        found = [v.reveal() for v in values if isinstance(v, Secret) and v.reveal()]
        found += [c for v in values if isinstance(v, SecretURL) for c in v.credentials]
        return list(dict.fromkeys(found))


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> Settings:
    """Read settings; the process environment wins over `.env`, which wins over the defaults."""
    values: dict[str, str | None] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update(dotenv_values(env_file))
    values.update(os.environ if environ is None else environ)
    parsed: dict[str, Any] = {}
    for field in FIELDS:
        raw = values.get(field.env)
        text = field.default if raw is None else raw
        try:
            parsed[field.attr] = field.parse(text)
        except ValueError as error:
            # Masked before it is cut to length, so no cut can leave part of a password.
            shown = "" if field.secret else f" (got {mask_url(text)[0]!r:.60})"
            raise SettingsError(f"setting {field.env}: {error}{shown}") from None
    assert {f.attr for f in FIELDS} == {f.name for f in fields(Settings)}
    return Settings(**parsed)
