"""A separate OS process that takes a journal lock, for the cross-process lock tests.

Usage: python -m tests.journal.hold_lock URL NAMESPACE NAME OWNER TTL
Prints READY, waits for a line on stdin, tries the lock and prints ACQUIRED or BUSY <holder>.
A holder keeps the lock (renewing it) until stdin closes, then releases it and prints RELEASED.
"""

from __future__ import annotations

import asyncio
import sys

from guild_sync.journal import open_journal


def say(line: str) -> None:
    print(line, flush=True)


async def main(url: str, namespace: str, name: str, owner: str, ttl: float) -> None:
    loop = asyncio.get_running_loop()
    async with await open_journal(url, namespace=namespace) as journal:
        say("READY")
        await loop.run_in_executor(None, sys.stdin.readline)
        lease = await journal.acquire(name, owner=owner, ttl=ttl)
        if lease is None:
            holder = await journal.holder(name)
            say(f"BUSY {holder.owner if holder else '?'}")
            return
        say("ACQUIRED")
        await loop.run_in_executor(None, sys.stdin.read)
        lost = lease.lost
        await lease.release()
        say("LOST" if lost else "RELEASED")


if __name__ == "__main__":
    url, namespace, name, owner, ttl = sys.argv[1:]
    asyncio.run(main(url, namespace, name, owner, float(ttl)))
