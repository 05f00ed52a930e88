"""A lease whose store stops answering (a partition: nothing refused, every call just waits)
must report itself lost before it expires, as it does when the store refuses promptly.

The branch logic runs on the virtual clock of test_lease_renewal (a store that never answers
costs no wall-clock time there); one test checks the same against real Redis behind a proxy
that goes silent, where the client's own socket timeout (5 s) is longer than the lease.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis

from guild_sync.journal import open_journal
from tests.redis_outage import RedisProxy

from .test_lease_renewal import TIMEOUT, lease_on, lost_at, run_virtual


class SilentStore:
    """Answers renewals from a script, then with `then`; `None` means: never answer that
    call, a float: renew after that many seconds."""

    def __init__(
        self,
        answers: list[bool | Exception | float | None],
        then: bool | float | None = None,
    ):
        self.answers = answers
        self.then = then
        self.extends: list[float] = []

    async def extend_lock(self, name: str, token: str, ttl: float) -> bool:
        self.extends.append(asyncio.get_running_loop().time())
        answer = self.answers.pop(0) if self.answers else self.then
        if answer is None:
            await asyncio.Event().wait()  # a partition: no answer, no error
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, float):
            await asyncio.sleep(answer)
            return True
        return bool(answer)

    async def release_lock(self, name: str, token: str) -> bool:
        return True


def test_a_store_that_never_answers_loses_the_lease_a_third_of_the_ttl_before_expiry() -> None:
    async def main() -> None:
        ttl = 0.6
        interval = ttl / 3
        store = SilentStore([])
        confirmed_at = asyncio.get_running_loop().time()
        lease = lease_on(store, ttl, confirmed_at)

        when_lost = await lost_at(lease)

        # One renewal, given until the next one was due, and then the lease was given up:
        # as early as with a store that refuses at once.
        assert store.extends == pytest.approx([confirmed_at + interval])
        assert when_lost == pytest.approx(confirmed_at + 2 * interval)
        assert when_lost < confirmed_at + ttl
        assert lease.lost_reason == "renewal kept failing (no answer within 0.2 s)"
        await lease.release()

    run_virtual(main())


def test_a_retry_that_hangs_is_given_up_with_time_left_before_expiry() -> None:
    async def main() -> None:
        ttl = 0.6
        interval = ttl / 3
        store = SilentStore([ConnectionError("blip"), None])
        confirmed_at = asyncio.get_running_loop().time()
        expires_at = confirmed_at + ttl
        lease = lease_on(store, ttl, confirmed_at)

        when_lost = await lost_at(lease)

        # The retry came while a renewal could still help, and was waited for only until
        # half a renewal interval before the expiry.
        assert store.extends == pytest.approx(
            [confirmed_at + interval, confirmed_at + 2 * interval]
        )
        assert when_lost == pytest.approx(expires_at - interval / 2)
        assert "no answer" in (lease.lost_reason or "")
        await lease.release()

    run_virtual(main())


def test_a_slow_answer_in_time_still_renews() -> None:
    async def main() -> None:
        ttl = 0.6
        interval = ttl / 3
        store = SilentStore([], then=interval * 0.9)
        confirmed_at = asyncio.get_running_loop().time()
        lease = lease_on(store, ttl, confirmed_at)

        await asyncio.sleep(5 * ttl)

        # Each answer came just within its renewal interval: nothing was given up.
        assert not lease.lost, lease.lost_reason
        assert len(store.extends) >= 7
        await lease.release()

    run_virtual(main())


@pytest.fixture
async def namespace(redis_client: redis.Redis) -> AsyncIterator[str]:
    name = f"test-lease-outage-{uuid.uuid4().hex}"
    yield name
    keys = list(redis_client.scan_iter(match=f"{name}:*"))
    if keys:
        redis_client.delete(*keys)


async def test_a_silent_redis_loses_the_lease_while_redis_still_holds_it(
    redis_client: redis.Redis, namespace: str
) -> None:
    ttl = 1.5
    proxy = RedisProxy(redis_client.connection_pool.connection_kwargs["port"])
    await proxy.start()
    try:
        async with (
            await open_journal(proxy.url, namespace=namespace) as cut_off,
            await open_journal("redis://127.0.0.1:6379/0", namespace=namespace) as other,
        ):
            lease = await cut_off.acquire("users", owner="bot-a", ttl=ttl)
            assert lease is not None
            await proxy.cut("silent")

            await asyncio.wait_for(lease.wait_lost(), TIMEOUT)
            left_ms = redis_client.pttl(f"{namespace}:lock:users")

            # Reported lost while Redis still keeps everyone else out, so the holder has
            # time to stop before a second process can take the lock.
            assert left_ms > 0, f"lost only after Redis let the lock go ({lease.lost_reason})"
            assert await other.acquire("users", owner="bot-b", ttl=ttl) is None
            assert "no answer" in (lease.lost_reason or ""), lease.lost_reason
            await lease.release()
    finally:
        await proxy.close()
