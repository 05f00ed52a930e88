"""Pick the journal backend from a URL, so deployments switch stores in configuration only."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from guild_sync.journal.base import DEFAULT_MAX_RUNS, Journal
from guild_sync.journal.redis_backend import RedisJournal, redact_url
from guild_sync.journal.sqlite_backend import SqliteJournal

SUPPORTED = "sqlite:///relative/or//absolute/path.sqlite3, redis://host:port/db, rediss://..."


async def open_journal(
    url: str, *, namespace: str = "guild-sync", max_runs: int = DEFAULT_MAX_RUNS
) -> Journal:
    """Open (and check) the journal at `url`.

    `sqlite:///data/journal.sqlite3` is relative to the working directory and
    `sqlite:////var/lib/bot/journal.sqlite3` absolute, as in SQLAlchemy; the directory is
    created if missing. Raises `ValueError` for another scheme and `JournalUnavailable` when
    the store cannot be reached.
    """
    if not namespace:
        raise ValueError("the journal namespace must not be empty")
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise ValueError(f"a sqlite journal URL looks like sqlite:///path, not {url!r}")
        path = Path(url.removeprefix("sqlite:///"))
        return await SqliteJournal.open(path, namespace=namespace, max_runs=max_runs)
    if scheme in ("redis", "rediss", "unix"):
        return await RedisJournal.open(url, namespace=namespace, max_runs=max_runs)
    raise ValueError(
        f"unsupported journal URL scheme {scheme!r} in {redact_url(url)!r}; use {SUPPORTED}"
    )
