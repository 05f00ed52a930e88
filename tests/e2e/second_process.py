"""A second bot process that wants to run the same sync, for the lost-lease test.

Usage: python -m tests.e2e.second_process REDIS_URL LOCK TTL SITE_URL TOKEN USER_ID

It takes the lock through the bot's own journal code (same namespace as the bot), and writes
to the site only once it holds it, as a sync run would. Much more eager than a bot (which
retries every second): the moment the lock is free, it has it.

Prints READY, waits for a line on stdin, then tries the lock every POLL_S and prints
BUSY <holder> after its first refusal. Once it holds the lock it reads the site's own counts
(before writing anything) and prints ACQUIRED <counts as JSON>, then writes one user with
bulk_patch and prints WROTE. It keeps the lock (renewing it) until stdin closes, then
releases it and prints RELEASED (or LOST). The line protocol, stdin, the release and the dump
of its stacks for a failing test are hold_lock's, as is `LineChild` that drives it.
"""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp

from guild_sync.journal import open_journal
from guild_sync.site import SiteClient
from tests.journal.hold_lock import Stdin, hold_until_stdin_closes, say

POLL_S = 0.02
USER_WRITES = ("POST /api/bot/users", "PATCH /api/bot/users/bulk_patch")


async def site_counts(site_url: str, token: str) -> dict[str, int]:
    """What the site has received and is still serving, by its own account."""
    headers = {"Authorization": f"Token {token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(f"{site_url}/_sandbox/stats") as response,
    ):
        response.raise_for_status()
        routes = (await response.json())["routes"]
    empty = {"requests": 0, "in_flight": 0}
    return {
        "bulk_patch_requests": routes.get(USER_WRITES[1], empty)["requests"],
        "user_writes_in_flight": sum(routes.get(r, empty)["in_flight"] for r in USER_WRITES),
    }


async def main(url: str, lock: str, ttl: float, site_url: str, token: str, user_id: int) -> None:
    stdin = await Stdin.open()
    owner = "second-process"
    async with await open_journal(url) as journal, SiteClient(site_url, token) as site:
        say("READY")
        if not await stdin.go():
            return
        said_busy = False
        while (lease := await journal.acquire(lock, owner=owner, ttl=ttl)) is None:
            if not said_busy:
                holder = await journal.holder(lock)
                say(f"BUSY {holder.owner if holder else '?'}")
                said_busy = True
            await asyncio.sleep(POLL_S)
        say(f"ACQUIRED {json.dumps(await site_counts(site_url, token))}")
        await site.bulk_patch_users([{"id": user_id, "name": "written by the second process"}])
        say("WROTE")
        await hold_until_stdin_closes(lease, stdin)


if __name__ == "__main__":
    url, lock, ttl, site_url, token, user_id = sys.argv[1:]
    asyncio.run(main(url, lock, float(ttl), site_url, token, int(user_id)))
