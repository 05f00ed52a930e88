"""Settings from the environment and an optional `.env` file, validated once at start-up.

`Settings` is a pydantic-settings class, as in python-discord/bot: each field names its variable
(its alias), its default as `.env.example` writes it and its help text (its description), so
start-up errors, `.env.example` and the operator guide cannot drift apart (`FIELDS` lists them).
Every value is read from its text by this module's own parsers, so a bad value stops start-up
with one line naming the setting in the operator's terms (`SettingsError`), not pydantic's.

Secrets are pydantic `SecretStr`s, which no repr, log line or traceback shows. URL settings are
`SecretURL`s: the real URL (a `str`) for the code that connects, with its credentials (a password,
a token-only userinfo, a `?password=`) masked as `***` in every repr and in start-up errors, and
listed by `Settings.secrets()` so the log and Sentry scrubbers hide them too.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, NamedTuple, get_args
from urllib.parse import unquote, unquote_plus, urlsplit

from pydantic import Field, PlainValidator, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

MAX_CHUNK_SIZE = 5000
MAX_IN_FLIGHT = 16
MAX_RECONCILE_HOURS = 720
UPSTREAM_DEV_SITE_KEY = "badbot13m0n8f570f942013fc818f234916ca531"


class SettingsError(ValueError):
    """A setting that cannot be used; the message is one line and names the setting."""


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

    Not a `SecretStr`, which would hide the whole URL: it is a `str`, so the journal (Redis) and
    the site client use it unchanged and a repr still says which host; `repr()` (and so the repr
    of `Settings`, `%r` and tracebacks) shows `redacted()`, and `credentials` feeds the log and
    Sentry scrubbers.
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


def _between(kind: type[int] | type[float], low: float, high: float) -> PlainValidator:
    noun = "a whole number" if kind is int else "a number"

    def parse(text: str) -> float:
        try:
            value = kind(text.strip().replace("_", "") if kind is int else text)
        except ValueError:
            raise ValueError(f"must be {noun}") from None
        if not low <= value <= high:  # NaN fails this too
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return PlainValidator(parse)


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`parse`, but None for an empty value (the setting is off or left to its user)."""
    return lambda text: parse(text) if text.strip() else None


def _hours(text: str) -> float:
    """Hours, fractions allowed (0.5 is 30 minutes); 0 means off."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number of hours") from None
    if not 0 <= value <= MAX_RECONCILE_HOURS:  # NaN fails this too
        raise ValueError(f"must be a number of hours between 0 (off) and {MAX_RECONCILE_HOURS}")
    return value


def _snowflake(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError("must be a Discord id (a whole number)") from None
    if not 0 < value < 2**63:
        raise ValueError("must be a Discord id between 1 and 2^63-1")
    return value


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


def _url(text: str) -> SecretURL:
    return SecretURL(text.strip())


def _state_url(text: str) -> SecretURL:
    scheme = urlsplit(text.strip()).scheme
    if scheme not in ("sqlite", "redis", "rediss"):
        raise ValueError("must start with sqlite:/// or redis://")
    return _url(text)


def _required_secret(text: str) -> SecretStr:
    if not text.strip():
        raise ValueError("must not be empty")
    return SecretStr(text.strip())


def _sentry_dsn(text: str) -> SecretStr:
    """A DSN sentry_sdk accepts. Checked here because sentry_sdk checks it only when the
    extension loads, where a typo was a traceback (`BadDsn` inside discord.py's ExtensionFailed)
    instead of one line. Its reason is not repeated: it may quote part of the DSN."""
    from sentry_sdk.utils import BadDsn, Dsn  # only when one is set: the CLI starts faster

    try:
        Dsn(text.strip())
    except BadDsn:
        raise ValueError("must be a Sentry DSN such as https://KEY@o0.ingest.sentry.io/0") from None
    return SecretStr(text.strip())


def _prefix(text: str) -> str:
    if not text or text.isspace() or len(text) > 10:
        raise ValueError("must be 1 to 10 characters, not only spaces")
    return text


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError("must be true or false")
    return lowered in ("1", "true", "yes", "on")


def _listen_address(text: str) -> str:
    """An IP literal, so a typo fails at start-up rather than when the endpoint binds."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError("must be an IP address such as 127.0.0.1 or 0.0.0.0") from None


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


Snowflake = Annotated[int | None, PlainValidator(_optional(_snowflake))]
Share = Annotated[float, _between(float, 0, 1)]
Secret = Annotated[SecretStr | None, PlainValidator(_optional(_required_secret))]
URL = Annotated[SecretURL, PlainValidator(_http_url)]
DSN = Annotated[SecretStr | None, PlainValidator(_optional(_sentry_dsn))]


def _setting(env: str, default: str, help: str) -> Any:
    """The field read from `env`, with its default as `.env.example` writes it (parsed like any
    value: `validate_default`) and its help text, the comment above it there."""
    return Field(default, validation_alias=env, description=help)


class _TextSource(EnvSettingsSource):
    """Variables from `variables` (an environment or a `.env` file's), each value handed to its
    field's parser as the text written: pydantic-settings would decode a list setting as JSON,
    but SYNC_MODERATOR_ROLE_IDS is written `1, 2,3`."""

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str | None]):
        super().__init__(settings_cls)
        self.env_vars = dict(variables)

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        return value


_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("_ENVIRON", default=None)
"""The mapping `load_settings` was given to read instead of `os.environ` (tests, the sandbox)."""


class Settings(BaseSettings):
    """Every setting; `load_settings` reads it and words a bad value as a `SettingsError`."""

    model_config = SettingsConfigDict(
        case_sensitive=True, env_file=".env", frozen=True, validate_default=True
    )

    # fmt: off
    bot_token: Secret = _setting("BOT_TOKEN", "", "Discord bot token; empty runs the sandbox demo")
    guild_id: Snowflake = _setting("GUILD_ID", "", "The guild to sync (needed with a token)")
    log_channel_id: Snowflake = _setting("SYNC_LOG_CHANNEL_ID", "",
        "Channel for live progress and every sync error (needed with a token)")
    moderator_role_ids: Annotated[tuple[int, ...], PlainValidator(_snowflakes)] = _setting(
        "SYNC_MODERATOR_ROLE_IDS", "",
        "Comma-separated role ids allowed to run !sync (administrators always are)")
    prefix: Annotated[str, PlainValidator(_prefix)] = _setting("BOT_PREFIX", "!", "Command prefix")
    prefix_commands: Annotated[bool, PlainValidator(_bool)] = _setting(
        "SYNC_PREFIX_COMMANDS", "true",
        "Answer the !sync prefix commands (needs the Message Content intent); false: slash "
        "commands only")
    site_api_url: URL = _setting("URLS_SITE_API", "http://site:8000/api",
        "The site's API base URL, without a user or password (the token authenticates)")
    site_api_key: Annotated[SecretStr, PlainValidator(_required_secret)] = _setting(
        "API_KEYS_SITE_API", UPSTREAM_DEV_SITE_KEY,
        "The site's API token (Authorization: Token ...)")
    chunk_size: Annotated[int, _between(int, 1, MAX_CHUNK_SIZE)] = _setting("SYNC_CHUNK_SIZE",
        "1000", f"Users per site request, at most {MAX_CHUNK_SIZE}; the site slows past 1000")
    max_in_flight: Annotated[int, _between(int, 1, MAX_IN_FLIGHT)] = _setting("SYNC_MAX_IN_FLIGHT",
        "2", "Most site requests at once; the sender adapts below this")
    page_size: Annotated[int, _between(int, 1, 10000)] = _setting("SYNC_PAGE_SIZE", "2500",
        "Users per page when reading the site")
    request_timeout: Annotated[float, _between(float, 1, 900)] = _setting("SYNC_REQUEST_TIMEOUT",
        "120", "Seconds before one site request is abandoned and retried")
    retry_attempts: Annotated[int, _between(int, 1, 20)] = _setting("SYNC_RETRY_ATTEMPTS", "5",
        "Attempts per site request before the chunk is reported failed")
    state_url: Annotated[SecretURL, PlainValidator(_state_url)] = _setting("SYNC_STATE_URL",
        "sqlite:///data/sync-state.sqlite3",
        "Run journal and lock store: sqlite:///path or redis://[:password@]host:port/db")
    startup_sync: Annotated[bool, PlainValidator(_bool)] = _setting("SYNC_STARTUP", "true",
        "Run a roles-then-users sync at start-up")
    reconcile_interval: Annotated[float, PlainValidator(_hours)] = _setting(
        "SYNC_RECONCILE_INTERVAL", "6",
        "Hours between background roles-then-users syncs that repair drift (each wait ±5%, "
        "fractions allowed); 0 turns them off")
    chunking_timeout: Annotated[float, _between(float, 1, 3600)] = _setting(
        "SYNC_CHUNKING_TIMEOUT", "300",
        "Seconds to wait for the guild's member list before saying in the log channel that it "
        "is late")
    progress_interval: Annotated[float, _between(float, 1, 300)] = _setting(
        "SYNC_PROGRESS_INTERVAL", "5",
        "Seconds between edits of a run's live message (Discord allows 5 per 5 s)")
    guard_left_share: Share = _setting("SYNC_GUARD_LEFT_SHARE", "0.10",
        "An automatic run marking more than this share of users as left asks a moderator first")
    guard_update_share: Share = _setting("SYNC_GUARD_UPDATE_SHARE", "0.25",
        "An automatic run writing any one field for more than this share of users asks a "
        "moderator first")
    guard_role_delete_share: Share = _setting("SYNC_GUARD_ROLE_DELETE_SHARE", "0.10",
        "An automatic run deleting more than this share of roles asks a moderator first")
    guard_timeout: Annotated[float, _between(float, 1, 86400)] = _setting("SYNC_GUARD_TIMEOUT",
        "900", "Seconds the guard's confirmation waits before it cancels")
    breaker_threshold: Annotated[int, _between(int, 1, 100)] = _setting("SYNC_BREAKER_THRESHOLD",
        "3", "Consecutive failed automatic runs before automatic runs stop")
    sentry_dsn: DSN = _setting("BOT_SENTRY_DSN", "", "Sentry DSN; empty disables Sentry")
    # A lambda, not str.strip: pydantic 2.7 would take its second parameter for the info argument.
    sentry_environment: Annotated[str, PlainValidator(lambda text: text.strip())] = _setting(
        "BOT_SENTRY_ENVIRONMENT", "production", "Sentry environment name")
    log_level: Annotated[str, PlainValidator(_log_level)] = _setting("LOG_LEVEL", "INFO",
        "Logging level")
    metrics_port: Annotated[int | None, PlainValidator(_optional(_between(int, 1, 65535).func))] = (
        _setting("SYNC_METRICS_PORT", "",
        "Port of a Prometheus /metrics endpoint, used when the host bot has no statsd client; "
        "empty turns it off"))
    metrics_host: Annotated[str, PlainValidator(_listen_address)] = _setting(
        "SYNC_METRICS_HOST", "127.0.0.1",
        "Address the metrics endpoint listens on; 0.0.0.0 listens on every interface "
        "(needed in a container)")
    discord_api_url: Annotated[SecretURL | None, PlainValidator(_optional(_http_url))] = _setting(
        "DISCORD_API_URL", "",
        "Sandbox only: a loopback Discord REST base; empty means discord.com")
    discord_gateway_url: Annotated[SecretURL, PlainValidator(_url)] = _setting(
        "DISCORD_GATEWAY_URL", "",
        "Sandbox only: a loopback Discord gateway URL; empty means Discord's")
    # fmt: on

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment (or the mapping `load_settings` was given in its place), then `.env`."""
        assert isinstance(dotenv_settings, DotEnvSettingsSource)
        environ = _ENVIRON.get()
        return (
            _TextSource(settings_cls, os.environ if environ is None else environ),
            _TextSource(settings_cls, dotenv_settings.env_vars),
        )

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
        values = dict(self).values()
        found = [v.get_secret_value() for v in values if isinstance(v, SecretStr)]
        found += [c for v in values if isinstance(v, SecretURL) for c in v.credentials]
        return list(dict.fromkeys(s for s in found if s))


class Setting(NamedTuple):
    """One setting as operators see it, for `.env.example`, the operator guide and errors."""

    env: str
    attr: str
    default: str
    help: str
    secret: bool

    @classmethod
    def of(cls, attr: str, field: FieldInfo) -> Setting:
        """The listing of `Settings.attr`; its secret flag says whether it is a `SecretStr`."""
        secret = SecretStr in (field.annotation, *get_args(field.annotation))
        return cls(str(field.validation_alias), attr, field.default, str(field.description), secret)


FIELDS: tuple[Setting, ...] = tuple(
    Setting.of(name, field) for name, field in Settings.model_fields.items()
)


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> Settings:
    """Read settings; the environment (or `environ` instead) wins over `.env`, then defaults."""
    reset = _ENVIRON.set(environ)
    try:
        return Settings(_env_file=env_file)
    except ValidationError as error:
        first = error.errors()[0]  # in field order, as operators read .env.example
        env = str(first["loc"][0])
        reason = first.get("ctx", {}).get("error", first["msg"])
        secret = any(f.secret for f in FIELDS if f.env == env)
        # Masked before it is cut to length, so no cut can leave part of a password.
        shown = "" if secret else f" (got {mask_url(str(first['input']))[0]!r:.60})"
        raise SettingsError(f"setting {env}: {reason}{shown}") from None
    finally:
        _ENVIRON.reset(reset)
