"""A held single-flight lock that renews itself and says when it is lost.

Why a lease with an expiry and not a blocking lock: the process holding it can die at any
moment (OOM, SIGKILL, a host reboot), and the lock lives in Redis or a SQLite file, not in the
process. A lease nobody renews expires after `ttl`, so a crash never leaves a lock that makes
every later run wait forever, and acquiring never blocks: a caller that finds the lock held
says "a run is already in progress" and moves on.

The price is that a live holder must keep renewing. Renewal runs every ttl/3; when it is
refused (someone else holds it now) or keeps failing until the lease may already have expired,
the lease reports itself lost *before* the expiry so the holder can stop writing before a
second process may start. A renewal the store does not answer (a partition, where nothing is
refused and every call waits for its socket timeout) counts as failed once its answer would
come too late, so a silent store is noticed in time too: the lease is reported lost at least
ttl/3 before the expiry when the store fails promptly, at least ttl/6 when a retry hangs.

The holder stops by racing `wait_lost()` against its work (the sync cog cancels the run, which
sends nothing new and waits for the requests already in flight).

Releasing stops the renewer with a flag it checks after every store call, not with the
cancellation alone: a store call can swallow a cancellation. On Python 3.11 `asyncio.wait_for`
returns the result of an operation that finished just as the cancellation came, and redis-py
sends every command through one (its socket timeout), so a release in that moment left the
renewer renewing forever and `release()` waiting for it forever.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Protocol

from guild_sync.journal.records import LockHolder

log = logging.getLogger(__name__)


class LeaseStore(Protocol):
    """The two compare-and-act operations on a lock, keyed by the holder's secret token."""

    async def extend_lock(self, name: str, token: str, ttl: float) -> bool: ...

    async def release_lock(self, name: str, token: str) -> bool: ...


class Lease:
    """The proof that this process holds the lock `name`; use as an async context manager."""

    def __init__(self, store: LeaseStore, holder: LockHolder, ttl: float, confirmed_at: float):
        self.name = holder.name
        self.owner = holder.owner
        self.acquired_at: datetime = holder.acquired_at
        self.ttl = ttl
        self.lost_reason: str | None = None
        self._store = store
        self._token = holder.token
        self._lost = asyncio.Event()
        self._released = False
        self._renewer = asyncio.create_task(
            self._renew_until_released(confirmed_at), name=f"lease-renewal:{self.name}"
        )

    def __repr__(self) -> str:
        state = "lost" if self.lost else "released" if self._released else "held"
        return f"<Lease {self.name!r} owner={self.owner!r} {state}>"

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    async def wait_lost(self) -> None:
        """Returns when the lease is lost; race it against the work the lease protects."""
        await self._lost.wait()

    async def release(self) -> None:
        """Stop renewing and free the lock now; a failed release just lets it expire.

        The cancellation ends a sleep or a hanging renewal at once, and `_released` ends the
        renewer when its store call swallowed the cancellation (see the module docstring).
        `asyncio.wait` rather than suppressing CancelledError: a caller cancelled (or timed
        out) while this waits must be cancelled, not see a release that seemed to succeed.
        """
        if self._released:
            return
        self._released = True
        self._renewer.cancel()
        await asyncio.wait([self._renewer])
        if self.lost:
            return
        try:
            await self._store.release_lock(self.name, self._token)
        except Exception:
            log.warning("could not release lock %r; it expires in %.1fs", self.name, self.ttl)

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.release()

    def _mark_lost(self, reason: str) -> None:
        self.lost_reason = reason
        self._lost.set()
        log.warning("lost lock %r held by %s: %s", self.name, self.owner, reason)

    async def _renew_until_released(self, confirmed_at: float) -> None:
        loop = asyncio.get_running_loop()
        interval = self.ttl / 3
        expires_at = confirmed_at + self.ttl
        next_at = confirmed_at + interval
        while True:
            # Every interval from the last attempt's start, so slow answers do not drift the
            # renewals towards the expiry.
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            attempt_at = loop.time()
            next_at = attempt_at + interval
            # A store that hangs (a partition, not a refusal) must not keep the decision past
            # the expiry: an answer later than this counts as a failed renewal.
            answer_by = min(attempt_at + interval, expires_at - interval / 2)
            try:
                async with asyncio.timeout_at(answer_by):
                    renewed = await self._store.extend_lock(self.name, self._token, self.ttl)
            except Exception as error:
                if self._released:
                    return  # released while this renewal ran, its cancellation swallowed
                problem = (
                    f"no answer within {max(0.0, answer_by - attempt_at):.1f} s"
                    if isinstance(error, TimeoutError)
                    else str(error) or type(error).__name__
                )
                if loop.time() + interval >= expires_at:
                    self._mark_lost(f"renewal kept failing ({problem})")
                    return
                log.warning("renewing lock %r failed, retrying: %s", self.name, problem)
                continue
            if self._released:
                return  # released while this renewal ran, its cancellation swallowed
            if not renewed:
                self._mark_lost("it expired or another process took it over")
                return
            expires_at = attempt_at + self.ttl
