"""benchmarks/sync_bench.py's own measurements: the requests its client sent (for any site) and
the memory of a site process with its children (`--site-pid`)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from bot.sandbox.site import SandboxSite
from guild_sync.site.records import User

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "sync_bench.py"
TOKEN = "bench-counting-token"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sync_bench"] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def site() -> AsyncIterator[SandboxSite]:
    site = SandboxSite(token=TOKEN)
    await site.start()
    yield site
    await site.stop()


def _user(user_id: int) -> User:
    return User(user_id, f"user{user_id}", "", 1, frozenset())


async def test_the_client_counts_what_it_sent_and_not_the_benchmarks_own_calls(
    bench: ModuleType, site: SandboxSite
) -> None:
    async with bench.CountingClient(site.url, TOKEN) as client:
        await client.create_users([_user(i) for i in range(1, 6)])
        await client.bulk_patch_users([{"id": i, "name": f"n{i}"} for i in range(1, 4)])
        await client.get_user(2)
        await client.request("GET", "_sandbox/stats")
        counted = client.counters()
    assert counted == {
        "requests": 3,
        "requests_by_route": {
            "GET bot/users/{id}": 1,
            "PATCH bot/users/bulk_patch": 1,
            "POST bot/users": 1,
        },
        "max_items_per_request": 5,
        "bulk_patch_items": 3,
        "requests_peak_in_flight": 1,
        "user_writes_peak_in_flight": 1,
    }
    assert site.stats.requests == 3  # the site agrees (it never counts its control routes)


async def test_the_client_counts_requests_in_flight_at_once(
    bench: ModuleType, site: SandboxSite
) -> None:
    async with bench.CountingClient(site.url, TOKEN) as client:
        await client.create_users([_user(i) for i in range(1, 4)])
        # Each request counts itself before its first wait, so three gathered are three at once.
        await asyncio.gather(
            *(client.bulk_patch_users([{"id": i, "name": "x"}]) for i in range(1, 4)),
            client.list_roles(),
        )
        counted = client.counters()
        assert (counted["requests_peak_in_flight"], counted["user_writes_peak_in_flight"]) == (4, 3)
        assert (client.in_flight, client.user_writes_in_flight) == (0, 0)
        client.reset()
        assert client.counters()["requests"] == 0


@pytest.fixture
def parent_and_child() -> Iterator[tuple[int, int]]:
    """A process that started a child (as a gunicorn master starts its workers)."""
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        yield parent.pid, child
    finally:
        os.kill(child, 9)
        parent.kill()
        parent.wait()
        parent.stdout.close()


def test_site_pid_memory_is_the_process_with_its_children(
    bench: ModuleType, parent_and_child: tuple[int, int]
) -> None:
    parent, child = parent_and_child
    assert bench.process_tree(parent) == [parent, child]
    assert bench._children_by_scan(parent) == [child]  # kernels without /proc/.../children
    alone, with_child = bench.rss(parent), bench.tree_rss(parent)
    assert with_child >= alone + bench.rss(child) // 2  # both Pythons (RSS moves a little)
    sampler = bench.RssSampler({"site": parent}, trees=frozenset({"site"}))
    assert sampler.peaks["site"] > alone
