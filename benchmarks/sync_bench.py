"""Benchmark the sync engine against the sandbox site running in a separate process.

    .venv/bin/python benchmarks/sync_bench.py --scenario role-delete --members 80000

The guild is synthetic (InMemoryGuild); the site's SQLite file is preloaded with the scenario's
starting state, then the site is started as its own process on loopback, so the bot's memory
and the site's memory are measured apart. By default the site runs its cost model
(`--site-cost real`, bot/sandbox/site/cost.py: each request takes the real site's measured time
on one of `--site-workers` workers, and its CPU and memory are accounted); `--site-cost none`
answers at once, so the numbers measure the bot alone. The bot's peak is sampled from
/proc/self/status during the run (ru_maxrss would include building the guild). The last line
printed is one JSON object; the run fails (exit 1) if the site does not match the guild
afterwards.

    .venv/bin/python benchmarks/sync_bench.py --site-url http://staging:8000/api \
        --site-token TOKEN --site-pid PID

runs against an operator's own (empty) site instead: the starting state is written through the
API in 1,000-user creates, the check reads the site back page by page, and the site's memory is
sampled when its process runs on this machine (`--site-pid`: the VmRSS of that process and all
its descendants, summed, so a gunicorn master's pid covers its workers). The bot's requests
(count, by route, the largest, how many at once) are counted by the benchmark's own client,
so they are known for any site; the sandbox site's own counters are reported beside them
(`site_*`), and are null on a site without them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.sandbox.external_site import ExternalSite, SiteRefused, seed_records, site_stats, survey
from bot.sandbox.site import SiteStore
from bot.sandbox.site.cost import COST_MODELS, DEFAULT_WORKERS, CostConfig
from bot.sandbox.site.process import start_site_process
from guild_sync.engine import InMemoryGuild, RunReport, SyncEngine
from guild_sync.site.client import SiteClient
from guild_sync.site.records import Role, User

TOKEN = "benchmark-token"
TOKEN_ENV = "API_KEYS_SITE_API"
BASE_ID = 100_000_000_000_000_000
EVERYONE_ROLE = Role(BASE_ID, "@everyone", 0, 0, 0)
ROLES = [Role(BASE_ID + n, f"role{n}", n * 1000, 1 << n, n) for n in range(1, 9)]
DOOMED = Role(BASE_ID + 99, "doomed", 0xFF0000, 0, 20)
DEFAULT_MEMBERS = {
    "role-delete": 80_000,
    "unchanged": 1_000_000,
    "mixed": 100_000,
    "event-burst": 20_000,
}
BURST_UPDATES = 10_000


def member(index: int) -> User:
    """Roles as the real site holds them (python-discord/bot's syncer): @everyone included."""
    roles = frozenset({EVERYONE_ROLE.id, ROLES[index % 8].id, ROLES[(index // 8) % 8].id})
    display = f"nick{index}" if index % 5 == 0 else ""
    return User(BASE_ID + 3 * index, f"user{index}", display, index % 10_000, roles)


@dataclass
class Scenario:
    guild: InMemoryGuild
    site_roles: list[Role]
    site_users: Callable[[], Iterator[User]]
    action: Callable[[SyncEngine], Awaitable[object]]


def build(name: str, members: int) -> Scenario:
    guild = InMemoryGuild([EVERYONE_ROLE, *ROLES])
    if name == "role-delete":
        for i in range(members):
            user = member(i)
            guild.add_member(User(**{**_fields(user), "roles": user.roles | {DOOMED.id}}))

        def holders() -> Iterator[User]:
            for i in range(members):
                user = member(i)
                yield User(**{**_fields(user), "roles": user.roles | {DOOMED.id}})

        return Scenario(
            guild,
            [EVERYONE_ROLE, *ROLES, DOOMED],
            holders,
            lambda engine: engine.delete_role(DOOMED.id, trigger="benchmark"),
        )
    for i in range(members):
        guild.add_member(member(i))
    if name == "unchanged":
        return Scenario(
            guild,
            [EVERYONE_ROLE, *ROLES],
            lambda: (member(i) for i in range(members)),
            lambda engine: engine.sync_users(trigger="benchmark"),
        )
    if name == "mixed":
        return Scenario(
            guild, [EVERYONE_ROLE, *ROLES[:-1], DOOMED], lambda: _mixed_site(members), _sync_all
        )
    if name == "event-burst":
        return Scenario(
            guild,
            [EVERYONE_ROLE, *ROLES],
            lambda: (member(i) for i in range(members)),
            lambda engine: _burst(engine, guild, min(members, BURST_UPDATES)),
        )
    raise SystemExit(f"unknown scenario {name!r}")


def _fields(user: User) -> dict[str, object]:
    return {f: getattr(user, f) for f in User.__slots__}


def _mixed_site(members: int) -> Iterator[User]:
    """Every 20 members: one missing (create), one renamed, one with other roles, one extra
    site user who left the guild, and some holders of a role the guild no longer has."""
    for i in range(members):
        user = member(i)
        kind = i % 20
        if kind == 0:
            continue
        if kind == 1:
            yield User(user.id, "old-name", user.display_name, user.discriminator, user.roles)
        elif kind == 2:
            roles = frozenset({EVERYONE_ROLE.id})
            yield User(user.id, user.name, user.display_name, user.discriminator, roles)
        elif kind == 3:
            roles = user.roles | {DOOMED.id}
            yield User(user.id, user.name, user.display_name, user.discriminator, roles)
        else:
            yield user
        if kind == 4:
            yield User(user.id + 1, f"gone{i}", "", 1, frozenset({EVERYONE_ROLE.id, ROLES[0].id}))


async def _sync_all(engine: SyncEngine) -> RunReport:
    """Roles first (strips the vanished role from its holders), then users; the users' report."""
    await engine.sync_roles(trigger="benchmark")
    return await engine.sync_users(trigger="benchmark")


async def _burst(engine: SyncEngine, guild: InMemoryGuild, updates: int) -> None:
    """`updates` single-member renames enqueued over about half a second, as gateway events."""
    engine.start()
    batch = 500
    for start in range(0, updates, batch):
        for i in range(start, min(updates, start + batch)):
            user = member(i)
            guild.update_member(
                User(user.id, f"renamed{i}", user.display_name, user.discriminator, user.roles)
            )
            engine.enqueue_member(user.id, {"name"})
        await asyncio.sleep(0.025)
    await engine.flush()


class CountingClient(SiteClient):
    """The site client, counting every request it sends on the wire (each retry too): by
    route, the items of the largest, user writes and how many were in flight at once. What the
    bot sent, whatever site answers; the benchmark's own `_sandbox/` calls are not counted."""

    USER_WRITES = frozenset({"POST bot/users", "PATCH bot/users/bulk_patch"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reset()

    def reset(self) -> None:
        self.by_route: Counter[str] = Counter()
        self.largest_items = 0
        self.bulk_patch_items = 0
        self.in_flight = self.peak_in_flight = 0
        self.user_writes_in_flight = self.user_writes_peak_in_flight = 0

    async def _request_once(
        self, method: str, path: str, body: Any, params: Mapping[str, Any] | None
    ) -> Any:
        if path.startswith("_sandbox/"):
            return await super()._request_once(method, path, body, params)
        route = f"{method} {_route(path)}"
        items = len(body) if isinstance(body, list) else int(body is not None)
        user_write = route in self.USER_WRITES
        self.by_route[route] += 1
        self.largest_items = max(self.largest_items, items)
        if route == "PATCH bot/users/bulk_patch":
            self.bulk_patch_items += items
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        self.user_writes_in_flight += user_write
        self.user_writes_peak_in_flight = max(
            self.user_writes_peak_in_flight, self.user_writes_in_flight
        )
        try:
            return await super()._request_once(method, path, body, params)
        finally:
            self.in_flight -= 1
            self.user_writes_in_flight -= user_write

    def counters(self) -> dict[str, Any]:
        return {
            "requests": sum(self.by_route.values()),
            "requests_by_route": dict(sorted(self.by_route.items())),
            "max_items_per_request": self.largest_items,
            "bulk_patch_items": self.bulk_patch_items,
            "requests_peak_in_flight": self.peak_in_flight,
            "user_writes_peak_in_flight": self.user_writes_peak_in_flight,
        }


def _route(path: str) -> str:
    """`bot/users/123` -> `bot/users/{id}`: the route, not the record."""
    return re.sub(r"/\d+(?=/|$)", "/{id}", path.strip("/"))


def process_tree(pid: int | str) -> list[int | str]:
    """`pid` and every process descended from it (a gunicorn master and its workers)."""
    found: list[int | str] = [pid]
    index = 0
    while index < len(found):
        found += _children(found[index])
        index += 1
    return found


def _children(pid: int | str) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    children: list[int] = []
    try:
        for task in tasks:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as listed:
                children += [int(child) for child in listed.read().split()]
    except FileNotFoundError:  # a kernel without CONFIG_PROC_CHILDREN: scan every process
        return _children_by_scan(pid)
    except OSError:
        pass
    return children


def _children_by_scan(pid: int | str) -> list[int]:
    parent = os.getpid() if pid == "self" else int(pid)
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            children.append(int(entry))
    return children


def tree_rss(pid: int | str) -> int:
    """VmRSS of `pid` and its descendants, summed (pages shared between them count in each)."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, RuntimeError):
            total += rss(member)
    return total


class RssSampler(threading.Thread):
    """Peak VmRSS of some processes while running, sampled every few milliseconds.

    Not ru_maxrss or VmHWM: those are high-water marks of the whole process, and building the
    guild raised them before the sync started.
    """

    def __init__(
        self,
        pids: dict[str, int | str],
        interval: float = 0.005,
        trees: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.pids = pids
        self.trees = trees
        """Names whose process is measured with its descendants (tree_rss)."""
        self.peaks = {name: self._rss(name, pid) for name, pid in pids.items()}
        self._stop_event = threading.Event()

    def _rss(self, name: str, pid: int | str) -> int:
        return tree_rss(pid) if name in self.trees else rss(pid)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        for name, pid in self.pids.items():
            self.peaks[name] = max(self.peaks[name], self._rss(name, pid))

    def stop(self) -> dict[str, int]:
        self._stop_event.set()
        self.join()
        self._sample()
        return self.peaks


class LoopStallMeter:
    """The longest stretch the event loop could not run a task during the sync: a ticker asks to
    wake every `interval` seconds and records how late it woke. Discord disconnects a bot whose
    loop misses heartbeats for tens of seconds, so a diff of a million members must keep this far
    below a second."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.longest_s = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.longest_s = max(self.longest_s, loop.time() - expected)

    async def stop(self) -> float:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.longest_s


def rss(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


class MismatchCount:
    """Site users that differ from the guild, plus members the site lacks, plus role diffs;
    fed one site user at a time, so a million-user site is never held at once."""

    def __init__(self, guild: InMemoryGuild) -> None:
        self.guild = guild
        self.wrong = 0
        self.members_seen = 0

    def add(self, user: User) -> None:
        current = self.guild.member(user.id)
        if current is None:
            self.wrong += user.in_guild
        else:
            self.members_seen += 1
            self.wrong += user != current

    def total(self, site_roles: Iterable[Role]) -> int:
        missing = self.guild.member_count() - self.members_seen
        roles_differ = sorted(site_roles, key=lambda r: r.id) != sorted(
            self.guild.roles(), key=lambda r: r.id
        )
        return self.wrong + missing + roles_differ


def count_in_store(db: str, guild: InMemoryGuild) -> int:
    store = SiteStore(db)
    count = MismatchCount(guild)
    for user in store.all_users():
        count.add(user)
    wrong = count.total(store.all_roles())
    store.close()
    return wrong


async def count_over_api(client: SiteClient, guild: InMemoryGuild) -> int:
    count = MismatchCount(guild)
    async for page in client.iter_user_pages():
        for user in page:
            count.add(user)
    return count.total(await client.list_roles())


@dataclass
class Site:
    client: CountingClient
    pid: int | None
    """The site's process when it runs on this machine, for its memory; None if unknown."""
    db: str | None = None
    """The sandbox site's SQLite file, checked directly once the site has stopped."""


@contextlib.asynccontextmanager
async def sandbox_site(
    scenario: Scenario, workdir: str, cost: CostConfig | None = None
) -> AsyncIterator[Site]:
    """The sandbox site as its own process, its SQLite file preloaded with the starting state,
    with the cost model `cost` (bot/sandbox/site/cost.py; None: no cost)."""
    db = str(Path(workdir) / "site.sqlite3")
    store = SiteStore(db)
    store.seed(scenario.site_roles, scenario.site_users())
    store.close()
    with start_site_process(token=TOKEN, db=db, timeout=120, cost=cost) as process:
        async with CountingClient(process.url, TOKEN, timeout=120) as client:
            yield Site(client, process.pid, db)


@contextlib.asynccontextmanager
async def external_site(
    scenario: Scenario, members: int, args: argparse.Namespace
) -> AsyncIterator[Site]:
    """An operator's empty site, seeded through its API; refused if it holds anything."""
    token = args.site_token or os.environ.get(TOKEN_ENV, "")
    if not token:
        raise SiteRefused(f"--site-url needs the site's token: --site-token or ${TOKEN_ENV}")
    target = ExternalSite(args.site_url.rstrip("/"), token, allow_existing=False)
    async with CountingClient(target.url, token, timeout=120) as client:
        advice = "The benchmark writes fixed ids and marks extra users as left; use an empty site."
        await survey(client, target, refusal=advice)
        await seed_records(client, scenario.site_roles, scenario.site_users(), members, sys.stdout)
        yield Site(client, args.site_pid)


async def run(args: argparse.Namespace) -> dict[str, object]:
    members = args.members or DEFAULT_MEMBERS[args.scenario]
    started = time.monotonic()
    scenario = build(args.scenario, members)
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        if args.site_url:
            opened = external_site(scenario, members, args)
        else:
            cost = CostConfig(model=args.site_cost, workers=args.site_workers)
            opened = sandbox_site(scenario, tmp, cost)
        async with opened as site:
            setup_s = time.monotonic() - started
            result = await measure(site, scenario, args)
            wrong = None if site.db else await count_over_api(site.client, scenario.guild)
        if site.db:
            wrong = count_in_store(site.db, scenario.guild)
    return {
        "scenario": args.scenario,
        "members": members,
        "site": "external" if args.site_url else "sandbox",
        **result,
        "setup_s": round(setup_s, 1),
        "mismatches": wrong,
    }


async def measure(site: Site, scenario: Scenario, args: argparse.Namespace) -> dict[str, object]:
    """Run the scenario's action once; what it cost the bot and (as far as it can say) the site."""
    client = site.client
    engine = SyncEngine(
        client, scenario.guild, chunk_size=args.chunk_size, max_in_flight=args.max_in_flight
    )
    gc.collect()
    baseline = rss()
    before = await site_stats(client)
    site_rss_start = tree_rss(site.pid) if site.pid else None
    watched: dict[str, int | str] = {"bot": "self"}
    if site.pid and not site.db:
        watched["site"] = site.pid
    sampler = RssSampler(watched, trees=frozenset({"site"}))
    client.reset()
    sampler.start()
    stalls = LoopStallMeter()
    stalls.start()
    t0 = time.monotonic()
    report = await scenario.action(engine)
    wall = time.monotonic() - t0
    longest_stall = await stalls.stop()
    peaks = sampler.stop()
    await engine.close()
    counted = client.counters()
    after = await site_stats(client)
    site_counted = _site_counters(before, after)
    written = report.written if report is not None else counted["bulk_patch_items"]
    # Our own sandbox site reports its exact high-water mark; another site is sampled, and
    # only during the run (its high-water mark would include the seeding).
    site_peak = after["peak_rss_bytes"] if site.db and after else peaks.get("site")
    window = engine.window
    return {
        "chunk_size": args.chunk_size,
        "max_in_flight": args.max_in_flight,
        "site_cost": args.site_cost if site.db else None,
        "site_workers": args.site_workers if site.db and args.site_cost == "real" else None,
        **counted,
        **site_counted,
        "written": written,
        "status": report.status if report is not None else "finished",
        "wall_s": round(wall, 2),
        "users_per_s": _rate(
            written if args.scenario == "event-burst" else scenario.guild.member_count(), wall
        ),
        "peak_in_flight": window.peak_in_flight,
        "window_settled": window.settled,
        "window_s_at_limit": {
            limit: round(seconds, 2) for limit, seconds in sorted(window.time_at_limits().items())
        },
        "window_changes": len(window.decisions),
        "site_peak_user_writes_in_flight": after["user_writes_peak_in_flight"] if after else None,
        "site_peak_bulk_patch_in_flight": _route_peak(after, "PATCH /api/bot/users/bulk_patch"),
        "empty_requests": after["empty_requests"] if after else None,
        "longest_loop_stall_s": round(longest_stall, 3),
        "bot_baseline_rss_mib": _mib(baseline),
        "bot_peak_rss_mib": _mib(peaks["bot"]),
        "bot_sync_rss_mib": _mib(peaks["bot"] - baseline),
        "site_rss_start_mib": _mib(site_rss_start),
        "site_peak_rss_mib": _mib(site_peak),
        # The sandbox site's cost model (--site-cost real): modelled CPU and memory of the run.
        "site_cpu_s": _modelled(before, after, "site_cpu_s"),
        "site_contention_cpu_s": _modelled(before, after, "site_contention_cpu_s"),
        "site_peak_memory_mib": after.get("site_peak_memory_mib") if after else None,
    }


def _modelled(before: dict[str, Any] | None, after: dict[str, Any] | None, key: str) -> Any:
    if before is None or after is None or "site_workers" not in after:
        return None
    return round(after[key] - before[key], 1)


def _route_peak(stats: dict[str, Any] | None, route: str) -> int | None:
    if stats is None:
        return None
    return stats["routes"].get(route, {}).get("peak_in_flight", 0)


def _site_counters(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """What the sandbox site itself counted during the run (its stats; it never counts its
    `_sandbox/` control routes); all None for a site that keeps none. The bot's own count of
    the same requests is `requests` and its kin."""
    names = ("requests", "max_items_per_request", "bulk_patch_items", "role_cascade_users")
    if before is None or after is None:
        return {f"site_{name}": None for name in names}
    return {
        "site_requests": after["requests"] - before["requests"],
        "site_max_items_per_request": after["largest_request_items"],
        "site_bulk_patch_items": after["bulk_patch_items"] - before["bulk_patch_items"],
        "site_role_cascade_users": after["role_cascade_users"] - before["role_cascade_users"],
    }


def _mib(size: int | None) -> float | None:
    return None if size is None else round(size / 2**20, 1)


def _rate(users: int | None, wall: float) -> int | None:
    return None if users is None or wall <= 0 else round(users / wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=sorted(DEFAULT_MEMBERS), default="role-delete")
    parser.add_argument("--members", type=int, default=0, help="default depends on the scenario")
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--max-in-flight", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="reserved: scenarios are deterministic")
    parser.add_argument(
        "--site-cost",
        choices=COST_MODELS,
        default="real",
        help="the sandbox site's cost model: real (default: each request takes the real site's "
        "modelled time on a worker, its CPU and memory accounted) or none (answers at once: the "
        "numbers measure the bot)",
    )
    parser.add_argument(
        "--site-workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"workers of the sandbox site's cost model (default {DEFAULT_WORKERS})",
    )
    parser.add_argument("--site-url", help="an empty site of your own instead of the sandbox site")
    parser.add_argument("--site-token", help=f"its API token (default: ${TOKEN_ENV})")
    parser.add_argument(
        "--site-pid",
        type=int,
        help="its process id, to sample its memory (with its descendants: a gunicorn master's)",
    )
    args = parser.parse_args()
    if (args.site_token or args.site_pid) and not args.site_url:
        parser.error("--site-token and --site-pid need --site-url")
    if args.site_workers < 1:
        parser.error("--site-workers must be at least 1")
    try:
        result = asyncio.run(run(args))
    except SiteRefused as refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    print(
        f"{result['scenario']}: {result['members']:,} members, {result['requests']} requests "
        f"(largest {result['max_items_per_request']} items), {result['wall_s']} s, "
        f"{result['users_per_s']} users/s; bot RSS {result['bot_baseline_rss_mib']} MiB "
        f"baseline, {result['bot_peak_rss_mib']} MiB peak (+{result['bot_sync_rss_mib']}); "
        f"site peak {result['site_peak_rss_mib']} MiB, CPU {result['site_cpu_s']} s (modelled), "
        f"peak in flight {result['site_peak_user_writes_in_flight']} (site) "
        f"{result['peak_in_flight']} (bot); mismatches {result['mismatches']}"
    )
    print(json.dumps(result, sort_keys=True))
    return 0 if result["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
