"""The embedded journal: one SQLite file, shared by every process that opens it.

Threading: every call runs on one dedicated worker thread that owns the connection. Calls are
short, but `BEGIN IMMEDIATE` waits (up to `busy_timeout`) while another process writes the
file, and a slow disk can stall a commit; done on the event loop, either would stall the
Discord gateway heartbeat. One thread (not `asyncio.to_thread`'s pool) keeps the connection on
the thread that made it and serialises this process's calls without another lock.

Every write is a `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock at the start:
a read-modify-write (a lease claim, a breaker count) cannot interleave with another process's.
Tables are STRICT so a wrong type cannot be stored; the JSON `data` columns are validated on
every read and a bad row is moved to `quarantine`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from guild_sync.journal.base import DEFAULT_MAX_RUNS, Journal, JournalUnavailable
from guild_sync.journal.records import RUNNING, BreakerState, LockHolder, RecordError, Run, utcnow

T = TypeVar("T")

QUARANTINE_KEEP = 100

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    namespace TEXT NOT NULL,
    run_id TEXT NOT NULL,
    started REAL NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (namespace, run_id)
) STRICT;
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (namespace, started DESC, run_id DESC);
CREATE TABLE IF NOT EXISTS leases (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    token TEXT NOT NULL,
    acquired REAL NOT NULL,
    expires REAL NOT NULL,
    ttl REAL NOT NULL,
    PRIMARY KEY (namespace, name)
) STRICT;
CREATE TABLE IF NOT EXISTS breakers (
    namespace TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (namespace, kind)
) STRICT;
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    raw TEXT,
    reason TEXT NOT NULL,
    quarantined_at TEXT NOT NULL
) STRICT;
"""


class SqliteJournal(Journal):
    def __init__(
        self,
        path: Path,
        *,
        namespace: str,
        max_runs: int = DEFAULT_MAX_RUNS,
        busy_timeout: float = 5.0,
    ):
        super().__init__(namespace=namespace, max_runs=max_runs)
        self.path = path
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._corrupt_found: collections.deque[tuple[str, str, str | None]] = collections.deque()

    def __repr__(self) -> str:
        return f"<SqliteJournal {str(self.path)!r} namespace={self.namespace!r}>"

    @classmethod
    async def open(cls, path: Path, **options: Any) -> SqliteJournal:
        journal = cls(path, **options)
        await journal._call(journal._connect)
        return journal

    async def close(self) -> None:
        if self._connection is not None:
            await self._call(self._disconnect)
        self._executor.shutdown(wait=True)

    # -- plumbing ---------------------------------------------------------------------------

    async def _call(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work` on the connection's thread; report what it quarantined once committed."""
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, work, *args)
        except sqlite3.Error as error:
            self._corrupt_found.clear()  # rolled back: nothing was set aside
            raise JournalUnavailable(f"journal file {self.path}: {error}") from error
        while self._corrupt_found:
            self._report_corrupt(*self._corrupt_found.popleft())
        return result

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        self._use_wal(connection)
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(SCHEMA)
        self._connection = connection

    def _use_wal(self, connection: sqlite3.Connection) -> None:
        """WAL lets readers (`!sync status`) go on while another process writes. Switching a
        new file to WAL needs an exclusive lock that SQLite does not wait for (no busy
        handler), so processes opening a new file together retry until `busy_timeout`."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _disconnect(self) -> None:
        assert self._connection is not None
        self._connection.close()
        self._connection = None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection
        if connection is None:
            raise sqlite3.ProgrammingError("the journal is closed")
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _read(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        if self._connection is None:
            raise sqlite3.ProgrammingError("the journal is closed")
        return self._connection.execute(query, (self.namespace, *params)).fetchall()

    def _quarantine(
        self, connection: sqlite3.Connection, source: str, key: str, raw: str | None, reason: str
    ) -> None:
        """Inside a write transaction: copy the bad row aside; the caller deletes the original."""
        connection.execute(
            "INSERT INTO quarantine (namespace, source, key, raw, reason, quarantined_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (self.namespace, source, key, raw, reason, utcnow().isoformat()),
        )
        connection.execute(
            "DELETE FROM quarantine WHERE namespace = ? AND id NOT IN"
            " (SELECT id FROM quarantine WHERE namespace = ? ORDER BY id DESC LIMIT ?)",
            (self.namespace, self.namespace, QUARANTINE_KEEP),
        )
        self._corrupt_found.append((f"{self.path}:{source}[{key}]", reason, raw))

    def _parse_run_or_quarantine(
        self, connection: sqlite3.Connection, run_id: str, raw: str
    ) -> Run | None:
        try:
            return Run.loads(raw)
        except RecordError as error:
            self._quarantine(connection, "runs", run_id, raw, str(error))
            connection.execute(
                "DELETE FROM runs WHERE namespace = ? AND run_id = ? AND data = ?",
                (self.namespace, run_id, raw),
            )
            return None

    # -- runs -------------------------------------------------------------------------------

    async def _insert_run(self, run: Run) -> None:
        await self._call(self._insert_run_sync, run, run.dumps())

    def _insert_run_sync(self, run: Run, data: str) -> None:
        with self._write() as connection:
            connection.execute(
                "INSERT INTO runs (namespace, run_id, started, status, data) VALUES (?,?,?,?,?)",
                (self.namespace, run.run_id, run.started_at.timestamp(), run.status, data),
            )
            connection.execute(
                "DELETE FROM runs WHERE namespace = ? AND status != ? AND run_id IN ("
                " SELECT run_id FROM runs WHERE namespace = ?"
                " ORDER BY started DESC, run_id DESC LIMIT -1 OFFSET ?)",
                (self.namespace, RUNNING, self.namespace, self.max_runs),
            )

    async def _transform_run(self, run_id: str, change: Callable[[Run], Run | None]) -> Run | None:
        return await self._call(self._transform_run_sync, run_id, change)

    def _transform_run_sync(self, run_id: str, change: Callable[[Run], Run | None]) -> Run | None:
        with self._write() as connection:
            row = connection.execute(
                "SELECT data FROM runs WHERE namespace = ? AND run_id = ?",
                (self.namespace, run_id),
            ).fetchone()
            if row is None:
                return None
            run = self._parse_run_or_quarantine(connection, run_id, row[0])
            if run is None:
                return None
            changed = change(run)
            if changed is None:
                return run
            connection.execute(
                "UPDATE runs SET status = ?, data = ? WHERE namespace = ? AND run_id = ?",
                (changed.status, changed.dumps(), self.namespace, run_id),
            )
            return changed

    async def _load_run(self, run_id: str) -> Run | None:
        # A write transaction that changes nothing, unless the row is corrupt and must move.
        return await self._call(self._transform_run_sync, run_id, lambda run: None)

    async def _load_runs(self) -> list[Run]:
        return await self._call(self._load_runs_sync)

    def _load_runs_sync(self) -> list[Run]:
        rows = self._read(
            "SELECT run_id, data FROM runs WHERE namespace = ? ORDER BY started DESC, run_id DESC"
        )
        runs, corrupt = [], []
        for run_id, raw in rows:
            try:
                runs.append(Run.loads(raw))
            except RecordError:
                corrupt.append((run_id, raw))
        if corrupt:
            with self._write() as connection:
                for run_id, raw in corrupt:
                    self._parse_run_or_quarantine(connection, run_id, raw)
        return runs

    # -- locks ------------------------------------------------------------------------------

    async def _claim_lock(self, claim: LockHolder, ttl: float) -> LockHolder | None:
        return await self._call(self._claim_lock_sync, claim, ttl)

    def _claim_lock_sync(self, claim: LockHolder, ttl: float) -> LockHolder | None:
        with self._write() as connection:
            holder = self._live_holder(connection, claim.name)
            if holder is not None:
                return holder
            now = time.time()
            connection.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    self.namespace,
                    claim.name,
                    claim.owner,
                    claim.token,
                    claim.acquired_at.timestamp(),
                    now + ttl,
                    ttl,
                ),
            )
            return None

    def _live_holder(self, connection: sqlite3.Connection, name: str) -> LockHolder | None:
        # Wall-clock time, because the file is shared by processes and survives reboots. A
        # lease reaching further ahead than its own ttl means the clock was set back: it is
        # treated as expired, or a dead holder's lease would outlive it by the clock jump.
        now = time.time()
        row = connection.execute(
            "SELECT owner, token, acquired, expires FROM leases"
            " WHERE namespace = ? AND name = ? AND expires > ? AND expires <= ? + ttl",
            (self.namespace, name, now, now),
        ).fetchone()
        if row is None:
            return None
        owner, token, acquired, expires = row
        return LockHolder(
            name=name,
            owner=owner,
            acquired_at=datetime.fromtimestamp(acquired, UTC),
            expires_in=expires - now,
            token=token,
        )

    async def _read_lock(self, name: str) -> LockHolder | None:
        return await self._call(self._read_lock_sync, name)

    def _read_lock_sync(self, name: str) -> LockHolder | None:
        assert self._connection is not None
        return self._live_holder(self._connection, name)

    async def extend_lock(self, name: str, token: str, ttl: float) -> bool:
        return await self._call(self._extend_lock_sync, name, token, ttl)

    def _extend_lock_sync(self, name: str, token: str, ttl: float) -> bool:
        with self._write() as connection:
            now = time.time()
            cursor = connection.execute(
                "UPDATE leases SET expires = ?, ttl = ?"
                " WHERE namespace = ? AND name = ? AND token = ? AND expires > ?",
                (now + ttl, ttl, self.namespace, name, token, now),
            )
            return cursor.rowcount == 1

    async def release_lock(self, name: str, token: str) -> bool:
        return await self._call(self._release_lock_sync, name, token)

    def _release_lock_sync(self, name: str, token: str) -> bool:
        with self._write() as connection:
            cursor = connection.execute(
                "DELETE FROM leases WHERE namespace = ? AND name = ? AND token = ?",
                (self.namespace, name, token),
            )
            return cursor.rowcount == 1

    # -- breaker ----------------------------------------------------------------------------

    async def _load_breaker(self, kind: str) -> BreakerState:
        before, _ = await self._call(self._transform_breaker_sync, kind, lambda state: state)
        return before

    async def _transform_breaker(
        self, kind: str, change: Callable[[BreakerState], BreakerState]
    ) -> tuple[BreakerState, BreakerState]:
        return await self._call(self._transform_breaker_sync, kind, change)

    def _transform_breaker_sync(
        self, kind: str, change: Callable[[BreakerState], BreakerState]
    ) -> tuple[BreakerState, BreakerState]:
        with self._write() as connection:
            row = connection.execute(
                "SELECT data FROM breakers WHERE namespace = ? AND kind = ?",
                (self.namespace, kind),
            ).fetchone()
            before = BreakerState(kind=kind)
            if row is not None:
                try:
                    before = BreakerState.loads(row[0], kind=kind)
                except RecordError as error:
                    self._quarantine(connection, "breakers", kind, row[0], str(error))
                    connection.execute(
                        "DELETE FROM breakers WHERE namespace = ? AND kind = ?",
                        (self.namespace, kind),
                    )
            after = change(before)
            if after != before:
                connection.execute(
                    "INSERT OR REPLACE INTO breakers VALUES (?, ?, ?)",
                    (self.namespace, kind, after.dumps()),
                )
            return before, after
