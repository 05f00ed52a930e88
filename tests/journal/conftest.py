"""One store per test, on each backend: SQLite in tmp_path and the real local Redis.

Redis is not optional: when it is down these tests fail with a message saying so, because a
suite that skips its shared backend would pass while the multi-process deployment is broken.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from guild_sync.journal import Journal, open_journal

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Store:
    """A journal store plus direct access to its raw rows, to plant corruption."""

    backend: str
    url: str
    namespace: str
    sqlite_path: Path | None = None
    redis_client: redis.Redis | None = None
    opened: list[Journal] = field(default_factory=list)

    async def open(self, **options: int) -> Journal:
        journal = await open_journal(self.url, namespace=self.namespace, **options)
        self.opened.append(journal)
        return journal

    def _sql(self, query: str, *params: object) -> list[tuple]:
        assert self.sqlite_path is not None
        with sqlite3.connect(self.sqlite_path) as connection:
            return connection.execute(query, params).fetchall()

    def write_run_raw(self, run_id: str, raw: str) -> None:
        if self.redis_client is not None:
            self.redis_client.set(f"{self.namespace}:run:{run_id}", raw)
        else:
            self._sql("UPDATE runs SET data = ? WHERE run_id = ?", raw, run_id)

    def write_breaker_raw(self, kind: str, raw: str) -> None:
        if self.redis_client is not None:
            self.redis_client.set(f"{self.namespace}:breaker:{kind}", raw)
        else:
            self._sql("INSERT OR REPLACE INTO breakers VALUES (?, ?, ?)", self.namespace, kind, raw)

    def delete_lock(self, name: str) -> None:
        if self.redis_client is not None:
            self.redis_client.delete(f"{self.namespace}:lock:{name}")
        else:
            self._sql("DELETE FROM leases WHERE name = ?", name)

    def plant_everlasting_lock(self, name: str) -> None:
        """A lock that would never expire: garbage without a TTL, or an expiry set far ahead
        (what a wall clock set back by days looks like)."""
        if self.redis_client is not None:
            self.redis_client.set(f"{self.namespace}:lock:{name}", b"\xff garbage")
        else:
            self._sql(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, 'ghost', 'x', ?, ?, 30.0)",
                self.namespace,
                name,
                time.time(),
                time.time() + 1e6,
            )

    def quarantined(self) -> list[tuple[str, str, str]]:
        """(source, key, raw) of every quarantined record, oldest first."""
        if self.redis_client is not None:
            entries = self.redis_client.lrange(f"{self.namespace}:quarantine", 0, -1)
            decoded = [json.loads(entry) for entry in reversed(entries)]
            return [(entry["source"], entry["key"], entry["raw"]) for entry in decoded]
        return [
            tuple(row) for row in self._sql("SELECT source, key, raw FROM quarantine ORDER BY id")
        ]


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(
            f"Redis is required by the journal tests and is not reachable at {REDIS_URL} "
            f"({error}); start redis-server locally (CI starts it)",
            pytrace=False,
        )
    yield client
    client.close()


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    namespace = f"test-journal-{uuid.uuid4().hex}"
    if request.param == "sqlite":
        path = tmp_path / "state" / "journal.sqlite3"
        store = Store("sqlite", f"sqlite:///{path}", namespace, sqlite_path=path)
    else:
        client = request.getfixturevalue("redis_client")
        store = Store("redis", REDIS_URL, namespace, redis_client=client)
    yield store
    for journal in store.opened:
        await journal.close()
    if store.redis_client is not None:
        keys = list(store.redis_client.scan_iter(match=f"{namespace}:*"))
        if keys:
            store.redis_client.delete(*keys)
