"""The shared journal: Redis, for deployments with more than one bot process.

Layout under the namespace `ns`:
    ns:run:<run_id>   JSON run            ns:runs         sorted set of run ids by start time
    ns:lock:<name>    JSON lock holder    ns:breaker:<kind>  JSON breaker state
    ns:quarantine     list of set-aside records (newest first, capped)

Read-modify-writes (run progress, breaker counts) use WATCH/MULTI, so a process that marks a
run interrupted cannot overwrite the owner's own finish and two processes counting failures
cannot lose one. Locks use Lua scripts, the only way to compare a holder's token and then act
on the key as one step: a plain GET followed by DEL could delete a lock that expired and was
taken by another process in between.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

from guild_sync.journal.base import DEFAULT_MAX_RUNS, Journal, JournalUnavailable
from guild_sync.journal.records import BreakerState, LockHolder, RecordError, Run, utcnow

P = ParamSpec("P")
T = TypeVar("T")

QUARANTINE_KEEP = 100
MAX_RACE_RETRIES = 50

# Claim the lock unless a live holder exists; return nil when claimed, else {holder, pttl}.
# A value without expiry was not written by a lease and would block every run forever: it is
# replaced, and returned with pttl -1 so the caller can quarantine it.
CLAIM_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return nil end
local current = redis.call('GET', KEYS[1])
local pttl = redis.call('PTTL', KEYS[1])
if pttl == -1 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return {current, pttl}
"""

# Holder token check shared by extend and release; garbage in the key is "not ours".
_IS_OURS = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, holder = pcall(cjson.decode, raw)
if not ok or type(holder) ~= 'table' or holder['token'] ~= ARGV[1] then return 0 end
"""
EXTEND_SCRIPT = _IS_OURS + "return redis.call('PEXPIRE', KEYS[1], ARGV[2])"
RELEASE_SCRIPT = _IS_OURS + "return redis.call('DEL', KEYS[1])"


def redact_url(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def _store_errors(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    @functools.wraps(method)
    async def translated(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except RedisError as error:
            journal = args[0]
            raise JournalUnavailable(f"journal at {journal!r}: {error}") from error

    return translated


class RedisJournal(Journal):
    def __init__(
        self,
        url: str,
        *,
        namespace: str,
        max_runs: int = DEFAULT_MAX_RUNS,
        timeout: float = 5.0,
    ):
        super().__init__(namespace=namespace, max_runs=max_runs)
        self._url = redact_url(url)
        self._redis = aioredis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=False
        )
        self._claim = self._redis.register_script(CLAIM_SCRIPT)
        self._extend = self._redis.register_script(EXTEND_SCRIPT)
        self._release = self._redis.register_script(RELEASE_SCRIPT)

    def __repr__(self) -> str:
        return f"<RedisJournal {self._url} namespace={self.namespace!r}>"

    @classmethod
    async def open(cls, url: str, **options: Any) -> RedisJournal:
        """Connect and check the server answers, so a wrong URL fails at start-up."""
        journal = cls(url, **options)
        try:
            await journal._redis.ping()
        except RedisError as error:
            await journal.close()
            raise JournalUnavailable(f"journal at {journal!r}: {error}") from error
        return journal

    async def close(self) -> None:
        # redis-py 5 renamed close() to aclose() (close() is deprecated there); 4.6, which
        # python-discord/bot runs through async-rediscache, has only close().
        aclose = getattr(self._redis, "aclose", None)
        await (aclose() if aclose is not None else self._redis.close())

    # -- plumbing ---------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    def _queue_quarantine(
        self, pipe: Pipeline, source: str, key: str, raw: bytes | None, reason: str
    ) -> None:
        text = None if raw is None else raw.decode("utf-8", "replace")
        entry = {
            "source": source,
            "key": key,
            "raw": text,
            "reason": reason,
            "at": utcnow().isoformat(),
        }
        pipe.lpush(self._key("quarantine"), json.dumps(entry))
        pipe.ltrim(self._key("quarantine"), 0, QUARANTINE_KEEP - 1)

    async def _atomically(
        self, key: str, step: Callable[[Pipeline, bytes | None], Awaitable[T]]
    ) -> T:
        """Run `step(pipe, current value)` under WATCH, again if another client raced it."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(MAX_RACE_RETRIES):
                try:
                    await pipe.watch(key)
                    return await step(pipe, await pipe.get(key))
                except WatchError:
                    continue
        raise JournalUnavailable(f"{key} changed under us {MAX_RACE_RETRIES} times in a row")

    # -- runs -------------------------------------------------------------------------------

    @_store_errors
    async def _insert_run(self, run: Run) -> None:
        index = self._key("runs")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key("run", run.run_id), run.dumps())
            pipe.zadd(index, {run.run_id: run.started_at.timestamp()})
            await pipe.execute()
        overflow = [raw.decode() for raw in await self._redis.zrevrange(index, self.max_runs, -1)]
        if not overflow:
            return
        raws = await self._redis.mget([self._key("run", run_id) for run_id in overflow])
        doomed = [run_id for run_id, raw in zip(overflow, raws, strict=True) if not _running(raw)]
        if doomed:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(*(self._key("run", run_id) for run_id in doomed))
                pipe.zrem(index, *doomed)
                await pipe.execute()

    @_store_errors
    async def _transform_run(self, run_id: str, change: Callable[[Run], Run | None]) -> Run | None:
        key = self._key("run", run_id)

        async def step(pipe: Pipeline, raw: bytes | None) -> Run | None:
            if raw is None:
                return None
            try:
                run = Run.loads(raw)
            except RecordError as error:
                pipe.multi()
                self._queue_quarantine(pipe, "run", run_id, raw, str(error))
                pipe.delete(key)
                pipe.zrem(self._key("runs"), run_id)
                await pipe.execute()
                self._report_corrupt(f"redis {key}", str(error), raw)
                return None
            changed = change(run)
            if changed is None:
                return run
            pipe.multi()
            pipe.set(key, changed.dumps())
            await pipe.execute()
            return changed

        return await self._atomically(key, step)

    @_store_errors
    async def _load_run(self, run_id: str) -> Run | None:
        raw = await self._redis.get(self._key("run", run_id))
        if raw is None:
            return None
        try:
            return Run.loads(raw)
        except RecordError:
            return await self._transform_run(run_id, lambda run: None)

    @_store_errors
    async def _load_runs(self) -> list[Run]:
        run_ids = [raw.decode() for raw in await self._redis.zrevrange(self._key("runs"), 0, -1)]
        if not run_ids:
            return []
        raws = await self._redis.mget([self._key("run", run_id) for run_id in run_ids])
        runs = []
        for run_id, raw in zip(run_ids, raws, strict=True):
            if raw is None:  # pruned by another process between the two reads
                continue
            try:
                runs.append(Run.loads(raw))
            except RecordError:
                await self._transform_run(run_id, lambda run: None)
        return runs

    # -- locks ------------------------------------------------------------------------------

    @_store_errors
    async def _claim_lock(self, claim: LockHolder, ttl: float) -> LockHolder | None:
        key = self._key("lock", claim.name)
        result = await self._claim(keys=[key], args=[claim.dumps(), _milliseconds(ttl)])
        if result is None:
            return None
        raw, pttl = result
        if pttl == -1:
            async with self._redis.pipeline(transaction=True) as pipe:
                self._queue_quarantine(pipe, "lock", claim.name, raw, "lock without expiry")
                await pipe.execute()
            self._report_corrupt(f"redis {key}", "lock without expiry, replaced", raw)
            return None
        return self._holder(claim.name, raw, pttl)

    def _holder(self, name: str, raw: bytes, pttl: int) -> LockHolder:
        try:
            return LockHolder.loads(raw, name=name, expires_in=pttl / 1000)
        except RecordError as error:
            # Left in place: it expires on its own, and may be a live holder of another version.
            self._report_corrupt(f"redis {self._key('lock', name)}", str(error), raw)
            return LockHolder(
                name=name, owner="unknown", acquired_at=utcnow(), expires_in=pttl / 1000
            )

    @_store_errors
    async def _read_lock(self, name: str) -> LockHolder | None:
        key = self._key("lock", name)
        async with self._redis.pipeline(transaction=True) as pipe:
            raw, pttl = await pipe.get(key).pttl(key).execute()
        if raw is None or pttl < 0:
            return None
        return self._holder(name, raw, pttl)

    @_store_errors
    async def extend_lock(self, name: str, token: str, ttl: float) -> bool:
        return bool(
            await self._extend(keys=[self._key("lock", name)], args=[token, _milliseconds(ttl)])
        )

    @_store_errors
    async def release_lock(self, name: str, token: str) -> bool:
        return bool(await self._release(keys=[self._key("lock", name)], args=[token]))

    # -- breaker ----------------------------------------------------------------------------

    @_store_errors
    async def _load_breaker(self, kind: str) -> BreakerState:
        before, _ = await self._transform_breaker(kind, lambda state: state)
        return before

    @_store_errors
    async def _transform_breaker(
        self, kind: str, change: Callable[[BreakerState], BreakerState]
    ) -> tuple[BreakerState, BreakerState]:
        key = self._key("breaker", kind)

        async def step(pipe: Pipeline, raw: bytes | None) -> tuple[BreakerState, BreakerState]:
            before, problem = BreakerState(kind=kind), None
            if raw is not None:
                try:
                    before = BreakerState.loads(raw, kind=kind)
                except RecordError as error:
                    problem = str(error)
            after = change(before)
            if after == before and problem is None:
                return before, after
            pipe.multi()
            if problem is not None:
                self._queue_quarantine(pipe, "breaker", kind, raw, problem)
            pipe.set(key, after.dumps())
            await pipe.execute()
            if problem is not None:
                self._report_corrupt(f"redis {key}", problem, raw)
            return before, after

        return await self._atomically(key, step)


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _running(raw: bytes | None) -> bool:
    try:
        return Run.loads(raw).is_running
    except RecordError:
        return False
