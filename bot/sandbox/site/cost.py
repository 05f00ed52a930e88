"""What a request costs the real site: modelled CPU time on one of N workers, and modelled memory.

With `CostConfig(model="real")` every request of the sandbox site waits its modelled service time
on a worker before it is applied (`CostModel.serve`): N workers each serve one request at a time,
so with one worker concurrent requests queue and with two they overlap, as on a one-process
waitress site and on gunicorn with `-w 2` (docker-compose.yml). The time is modelled, not burnt:
the request sleeps, and `site_cpu_s` in the stats adds up the modelled seconds. With
`model="none"` (the default of the site, of its command line and of every test) nothing waits and
nothing is counted: the sandbox answers in milliseconds, as it always has.

Every constant is fitted to shared/site-api.md ("Measured on a 2-core machine" and "Measured
again", upstream site, PostgreSQL 15 with persistent connections, JIT off as docker-compose.yml
sets it). A `bulk_patch` of n items costs

    REQUEST_S + (sum of the items' costs) * (1 + n / SUPERLINEAR_ITEMS)

where an item costs ITEM_S, plus FIELD_S for each scalar field (name, display_name,
discriminator, in_guild) and ROLES_FIELD_S for `roles` when any item of the request sends that
field (the site's one UPDATE covers the union of the fields sent: an item that did not send a
field still gets a CASE branch for it), plus ROLE_QUERY_S when this item's `roles` is not empty
(the site's role-existence query). tests/sandbox_site/test_cost_model.py checks the model against
every measured figure it was fitted to, within 20 %.

Contention: a one-process site (one worker: waitress, 4 threads) runs every request it holds at
once on its threads, and they contend for its CPU (the interpreter's lock, the database
connection's round trips): site-api.md measured 49.3 s of site CPU for the 80,000-user role
removal with 3 requests in flight against 42.3 s with 1 (+16.5 %) for the same work. The model
serves them one at a time on its worker (the same wall time for a CPU-bound process) and charges
the request on the worker CONTENTION_PER_REQUEST of its time for each other request the process
holds meanwhile (integrated over its service), as CPU and as time: the modelled worker is always
busy, so its extra CPU delays everything behind it. Gunicorn's sync workers (two workers) hold
one request each, the rest wait in the listen backlog: no contention (measured: 39.0 s of CPU for 3
in flight on 2 workers against 41.6 s for 1).

Memory is accounted, not allocated: the modelled site holds `workers * WORKER_RSS_MIB` at rest
plus, for each request on a worker, its items' memory, which builds up over the request's per-item
share of its time (validation and building the statement) and is held until it is answered. A
request that would take the site past `memory_limit_mib` dies when the accounted memory reaches
the limit, as a worker that the kernel's OOM killer takes in a cgroup with a memory limit: the
client's connection is closed without an answer (or, with `oom_answer="502"`, a proxy in front
answers 502), nothing of the request is written (the site's UPDATE never ran), and the worker is
back after WORKER_RESTART_S. The process's own RSS (`peak_rss_bytes`) is reported apart and is
the sandbox's, not the site's.

Fidelity limits: one fitted curve for every payload (the superlinear part was measured on one
payload); queued requests hold no memory (gunicorn's sync workers leave them in the listen
backlog; the one-process waitress site measured 126 MiB instead of 120 with three in flight); the
request that crosses the limit is the one killed (the kernel picks the largest process); no
contention between workers for the 2 cores (see Contention); contention on one process is a
linear fit to one measured point (3 in flight), charged for the requests held during a request's
base time only (not during the extra it adds); PostgreSQL's own memory is not modelled (it grew
to 2 GiB in the outage); estimates that were not measured are marked so below.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

COST_MODELS = ("none", "real")
OOM_ANSWERS = ("drop", "502")
DEFAULT_WORKERS = 2
"""docker-compose.yml's site: gunicorn with 2 worker processes."""

# -- time (seconds of a worker) ----------------------------------------------------------------
# The per-payload table ("Measured again": one 1,000-item bulk_patch, seconds per request):
#   {id, display_name} 0.10   {id, roles: []} 0.21   {id, roles: [2 ids]} 0.50
#   full user, roles [] 0.52  full user, 2 roles 0.85
# Each figure minus REQUEST_S, divided by 1,000 items and by the superlinear factor at 1,000
# items (1 + 1000 / SUPERLINEAR_ITEMS = 1.0732), is one item's cost:
#   {id, display_name} 88.5 us = ITEM_S + FIELD_S
#   {id, roles: []}   191.0 us = ITEM_S + ROLES_FIELD_S
#   full, roles []    479.9 us = ITEM_S + 4 * FIELD_S + ROLES_FIELD_S
# which gives FIELD_S = (479.9 - 191.0) / 4, then ITEM_S and ROLES_FIELD_S.
REQUEST_S = 0.005
"""Estimate, not measured: Django and DRF's fixed cost of one request with a persistent database
connection (without one, site-api.md measured about 20 ms more). It is what a request that is
not a page, a create, a bulk_patch or a role deletion costs."""
FIELD_S = 72.2e-6
"""One scalar field's CASE branch for one item (fitted, above)."""
ITEM_S = 16.3e-6
"""One item's fixed share: its WHEN id=..., its SELECT row and serialisation (fitted, above)."""
ROLES_FIELD_S = 174.7e-6
"""The `roles` array field's branch for one item, its list validated and serialised (fitted)."""
ROLE_QUERY_S = 289e-6
"""The role-existence query of an item whose `roles` is not empty: the mean of the table's two
differences, (0.50 - 0.21) and (0.85 - 0.52) s per 1,000 items, divided by the factor 1.0732;
site-api.md: "a non-empty one costs about 0.3 ms per item"."""
SUPERLINEAR_ITEMS = 13_670
"""Cost grows superlinearly past a few thousand items (one CASE branch per user): the factor
(1 + n / 13,670) makes 4,000 items cost 4.82 times 1,000 items, as measured (1.1 s and 5.3 s). It
then predicts 17.8 s for 10,000 items against the 16 s measured with JIT off (338 s with JIT on,
which docker-compose.yml turns off), and about 7 minutes for 80,000 full users, which never
finished in 15 minutes with JIT on."""
PAGE_ROW_S = (0.06 - REQUEST_S) / 2500
"""`GET bot/users?page=N`: 2,500 rows in about 0.06 s (22 us a row)."""
CREATE_ITEM_S = (2.9 - REQUEST_S) / 5000 - ROLE_QUERY_S
"""`POST bot/users` with a list: 5,000 users in about 2.9 s (0.58 ms each), assumed to carry
non-empty `roles` (every member holds @everyone), so an item costs 0.29 ms plus ROLE_QUERY_S when
its `roles` is not empty. One multi-row INSERT, no CASE: linear (only one size was measured)."""
CASCADE_USER_S = 1e-3
"""Estimate, not measured: `DELETE bot/roles/{id}` saves each holder with its own UPDATE (one
ORM save and round trip, against 0.48 ms per full user inside one bulk UPDATE)."""
CONTENTION_PER_REQUEST = (49.3 / 42.3 - 1) / 2
"""Extra share of a request's time on a one-process site for each other request that process
holds meanwhile (0.083): site-api.md's 80,000-user role removal on one process cost 49.3 s of CPU
with 3 requests in flight (2 others held by each) against 42.3 s with 1. Fitted to that one
point; tests/sandbox_site/test_cost_model.py checks the modelled ratio."""
ONE_PROCESS_THREADS = 4
"""The one-process site measured in site-api.md: waitress with 4 threads, so it holds (and runs
at once) up to 4 requests; more wait unread in its queue."""
WORKER_RESTART_S = 2.0
"""Estimate, not measured: gunicorn replacing a killed worker (fork and Django's start-up)."""

# -- memory (MiB and bytes) ---------------------------------------------------------------------
# The 80,000-user table ("Measured again", one 1,000-item request at a time, site RSS start ->
# peak): full users 113.5 -> 140 MiB (+26.5 MiB per 1,000 items), `{id, roles}` 113.6 -> 120 MiB
# (+6.5 MiB). Per item: 27.1 KiB with 5 fields besides the id, 6.66 KiB with 1, so
# ITEM_BYTES + FIELD_BYTES = 6.66 KiB and ITEM_BYTES + 5 * FIELD_BYTES = 27.1 KiB.
WORKER_RSS_MIB = 118.0
"""A worker at rest: gunicorn's two workers measured 236 MiB together (the one-process waitress
site 113.5 MiB)."""
FIELD_BYTES = round((26.5 - 6.5) / 4 / 1000 * 2**20)
"""One field besides the id, per item: 5.1 KiB (fitted, above)."""
ITEM_BYTES = round(6.5 / 1000 * 2**20) - FIELD_BYTES
"""One item's fixed share: 1.5 KiB (fitted, above)."""
PAGE_ROW_BYTES = round(6.5 / 2500 * 2**20)
"""A user row of a page read: 2.6 KiB, an upper bound (the `{id, roles}` run's +6.5 MiB peak
includes its 2,500-row page reads)."""
DEPLOYMENT_MEMORY_LIMIT_MIB = 1024.0
"""docker-compose.yml's site limit (1G): at rest 400 MB in production, 1.5 GB in the outage."""

USER_SCALAR_FIELDS = frozenset({"name", "display_name", "discriminator", "in_guild"})
MIB = 2**20


@dataclass(frozen=True, slots=True)
class CostConfig:
    """How the sandbox site models the real one's cost (see the module docstring).

    `time_scale` is real seconds per modelled second: 1.0 waits the modelled time, 0.01 plays it
    a hundred times faster (the stats still count modelled seconds), 0 does not wait at all.
    `memory_limit_mib` None means no limit.
    """

    model: str = "none"
    workers: int = DEFAULT_WORKERS
    memory_limit_mib: float | None = None
    time_scale: float = 1.0
    oom_answer: str = "drop"

    def __post_init__(self) -> None:
        if self.model not in COST_MODELS:
            raise ValueError(f"the cost model must be one of: {', '.join(COST_MODELS)}")
        if self.workers < 1:
            raise ValueError("the site needs at least one worker")
        if self.time_scale < 0 or not math.isfinite(self.time_scale):
            raise ValueError("time_scale must be a finite number, at least 0")
        if self.memory_limit_mib is not None and self.memory_limit_mib <= 0:
            raise ValueError("memory_limit_mib must be positive")
        if self.oom_answer not in OOM_ANSWERS:
            raise ValueError(f"oom_answer must be one of: {', '.join(OOM_ANSWERS)}")

    @property
    def enabled(self) -> bool:
        return self.model == "real"

    @property
    def threads(self) -> int:
        """Requests one worker process holds and runs at once: one process (waitress) holds up
        to ONE_PROCESS_THREADS; gunicorn's sync workers (more than one) hold one each."""
        return ONE_PROCESS_THREADS if self.workers == 1 else 1

    @property
    def rest_mib(self) -> float:
        """The site's memory at rest: every worker's."""
        return self.workers * WORKER_RSS_MIB


@dataclass(frozen=True, slots=True)
class Work:
    """One request's modelled cost: `cpu_s` on a worker, of which the first `ramp_s` build up
    its `memory_bytes` (held until the answer)."""

    cpu_s: float
    ramp_s: float = 0.0
    memory_bytes: int = 0


def request_work() -> Work:
    return Work(REQUEST_S)


def _fields(item: Any) -> set[str]:
    return set(item) & (USER_SCALAR_FIELDS | {"roles"}) if isinstance(item, dict) else set()


def _has_roles(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("roles"), list) and bool(item["roles"])


def bulk_patch_work(items: list[Any]) -> Work:
    """`PATCH bot/users/bulk_patch`: one UPDATE over the union of the fields sent."""
    count = len(items)
    union: set[str] = set().union(*(_fields(item) for item in items))
    per_item = ITEM_S + FIELD_S * len(union - {"roles"}) + ROLES_FIELD_S * ("roles" in union)
    items_s = count * per_item + ROLE_QUERY_S * sum(map(_has_roles, items))
    memory = count * (ITEM_BYTES + FIELD_BYTES * len(union))
    return Work(REQUEST_S + items_s * (1 + count / SUPERLINEAR_ITEMS), items_s, memory)


def create_work(items: list[Any]) -> Work:
    """`POST bot/users`, one object or a list: one INSERT, linear."""
    items_s = len(items) * CREATE_ITEM_S + ROLE_QUERY_S * sum(map(_has_roles, items))
    memory = sum(ITEM_BYTES + FIELD_BYTES * len(_fields(item)) for item in items)
    return Work(REQUEST_S + items_s, items_s, memory)


def page_work(rows: int) -> Work:
    """`GET bot/users?page=N`: the page's rows read and serialised."""
    return Work(REQUEST_S + rows * PAGE_ROW_S, rows * PAGE_ROW_S, rows * PAGE_ROW_BYTES)


def cascade_work(users: int) -> Work:
    """`DELETE bot/roles/{id}`: one UPDATE per user who held the role."""
    return Work(REQUEST_S + users * CASCADE_USER_S)


class WorkerKilled(Exception):
    """The request took the site past its memory limit: its worker was killed mid-request."""

    def __init__(self, cpu_s: float, memory_mib: float, limit_mib: float) -> None:
        super().__init__(f"killed at {memory_mib:.0f} MiB (limit {limit_mib:.0f} MiB)")
        self.cpu_s = cpu_s
        self.memory_mib = memory_mib
        self.limit_mib = limit_mib


class Clock(Protocol):
    """Modelled time: what the workers wait on (tests pass one they drive by hand)."""

    def now(self) -> float:
        """Modelled seconds since some fixed point."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of modelled time (or until `close`)."""
        ...

    def close(self) -> None:
        """End every wait now (the site is stopping)."""
        ...


class ScaledClock:
    """Real time, `scale` real seconds per modelled second (0: no wait at all)."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self._closed = asyncio.Event()

    def now(self) -> float:
        return time.monotonic() / self.scale if self.scale else math.inf

    async def sleep(self, seconds: float) -> None:
        if self.scale and seconds > 0 and not self._closed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), seconds * self.scale)

    def close(self) -> None:
        self._closed.set()


@dataclass
class _Serving:
    """A request on a worker, for the memory account."""

    started: float
    ramp_s: float
    memory_bytes: int

    def memory_at(self, now: float) -> float:
        elapsed = now - self.started
        if self.ramp_s <= 0 or math.isnan(elapsed) or elapsed >= self.ramp_s:
            return self.memory_bytes
        return self.memory_bytes * max(0.0, elapsed) / self.ramp_s


@dataclass
class CostModel:
    """The site's workers, its modelled CPU seconds and its memory account."""

    config: CostConfig = field(default_factory=CostConfig)
    clock: Clock | None = None
    cpu_s: float = 0.0
    oom_kills: int = 0
    last_oom: dict[str, Any] | None = None
    queued: int = 0
    peak_queued: int = 0
    peak_memory_mib: float = 0.0
    peak_since_kill_mib: float = 0.0
    """The peak since the last OOM kill: what a restarted worker's own high-water mark shows."""
    restarting: int = 0
    contention_cpu_s: float = 0.0
    """The part of `cpu_s` charged for contention (one process holding several requests)."""

    def __post_init__(self) -> None:
        if self.clock is None:
            self.clock = ScaledClock(self.config.time_scale)
        self._slots = asyncio.Semaphore(self.config.workers)
        self._serving: dict[int, _Serving] = {}
        self._ids = itertools.count()
        self._restarts: set[asyncio.Task[None]] = set()
        self.peak_memory_mib = self.peak_since_kill_mib = self.config.rest_mib
        self._contention_area = 0.0
        """Integral over modelled time of `_contenders()`: request-seconds of contention."""
        self._area_at: float | None = None

    @property
    def busy(self) -> int:
        """Workers serving a request now."""
        return len(self._serving)

    def memory_mib(self) -> float:
        """The site's accounted memory now: the workers at rest plus what their requests built."""
        assert self.clock is not None
        now = self.clock.now()
        held = sum(serving.memory_at(now) for serving in self._serving.values())
        return self.config.rest_mib + held / MIB

    async def serve(self, work: Work) -> float:
        """Wait for a free worker, then the request's modelled time on it; the modelled seconds.
        Raises WorkerKilled when the request takes the site past its memory limit."""
        if not self.config.enabled:
            return 0.0
        assert self.clock is not None
        self._account_contention()
        self.queued += 1
        self.peak_queued = max(self.peak_queued, self.queued)
        try:
            await self._slots.acquire()
        finally:
            self._account_contention()
            self.queued -= 1
        key = next(self._ids)
        killed = False
        try:
            room = self._room_bytes()
            if room is not None and work.memory_bytes > room:
                killed = True
                return await self._die(key, work, room)
            self._serving[key] = _Serving(self.clock.now(), work.ramp_s, work.memory_bytes)
            self._account_peak()
            area_before = self._account_contention()
            await self.clock.sleep(work.cpu_s)
            extra = CONTENTION_PER_REQUEST * (self._account_contention() - area_before)
            if extra > 0:
                await self.clock.sleep(extra)
                self.contention_cpu_s += extra
            self.cpu_s += work.cpu_s + extra
            return work.cpu_s + extra
        finally:
            self._account_contention()
            self._serving.pop(key, None)
            if killed:
                self._restart_worker()
            else:
                self._slots.release()

    def _room_bytes(self) -> float | None:
        """Memory this request may take before the site reaches its limit (None: no limit),
        counting every other request on a worker at its full size."""
        limit = self.config.memory_limit_mib
        if limit is None:
            return None
        return max(0.0, (limit - self.config.rest_mib) * MIB - self._held_bytes())

    async def _die(self, key: int, work: Work, room: float) -> float:
        """Build the request's memory until the limit, then die as an OOM-killed worker."""
        assert self.clock is not None
        share = room / work.memory_bytes
        spent = work.ramp_s * share
        self._serving[key] = _Serving(self.clock.now(), spent, round(room))
        await self.clock.sleep(spent)
        self._account_peak()
        self.cpu_s += spent
        self.oom_kills += 1
        limit = self.config.memory_limit_mib
        assert limit is not None
        reached = self.memory_mib()
        self.last_oom = {
            "after_s": round(spent, 3),
            "request_items_mib": round(work.memory_bytes / MIB, 1),
            "reached_mib": round(reached, 1),
            "limit_mib": limit,
            "answer": self.config.oom_answer,
        }
        del self._serving[key]
        self.peak_since_kill_mib = self.config.rest_mib + self._held_bytes() / MIB
        raise WorkerKilled(spent, reached, limit)

    def _contenders(self) -> int:
        """Other requests the serving worker's process holds at once (0 with sync workers)."""
        if not self._serving or self.config.threads == 1:
            return 0
        return min(self.config.threads - 1, len(self._serving) - 1 + self.queued)

    def _account_contention(self) -> float:
        """Bring the contention integral up to now (before `queued` or the workers change);
        returns it. Nothing accrues on a clock that does not wait (time_scale 0)."""
        assert self.clock is not None
        now = self.clock.now()
        if not math.isfinite(now):
            return self._contention_area
        if self._area_at is not None:
            self._contention_area += self._contenders() * max(0.0, now - self._area_at)
        self._area_at = now
        return self._contention_area

    def _held_bytes(self) -> int:
        return sum(serving.memory_bytes for serving in self._serving.values())

    def _account_peak(self) -> None:
        now = self.config.rest_mib + self._held_bytes() / MIB
        self.peak_memory_mib = max(self.peak_memory_mib, now)
        self.peak_since_kill_mib = max(self.peak_since_kill_mib, now)

    def _restart_worker(self) -> None:
        """The killed worker's slot comes back after WORKER_RESTART_S (modelled)."""
        self.restarting += 1

        async def restart() -> None:
            assert self.clock is not None
            try:
                await self.clock.sleep(WORKER_RESTART_S)
            finally:
                self.restarting -= 1
                self._slots.release()

        task = asyncio.get_running_loop().create_task(restart())
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    def close(self) -> None:
        """End every modelled wait now: the site is stopping."""
        assert self.clock is not None
        self.clock.close()

    def snapshot(self) -> dict[str, Any]:
        config = self.config
        if not config.enabled:
            return {"site_cost": config.model, "site_cpu_s": 0.0}
        return {
            "site_cost": config.model,
            "site_workers": config.workers,
            "site_time_scale": config.time_scale,
            "site_cpu_s": round(self.cpu_s, 3),
            "site_contention_cpu_s": round(self.contention_cpu_s, 3),
            "site_busy_workers": self.busy,
            "site_restarting_workers": self.restarting,
            "site_queued": self.queued,
            "site_peak_queued": self.peak_queued,
            "site_memory": "modelled: workers at rest plus each served request's items",
            "site_memory_mib": round(self.memory_mib(), 1),
            "site_peak_memory_mib": round(self.peak_memory_mib, 1),
            "site_peak_memory_since_kill_mib": round(self.peak_since_kill_mib, 1),
            "site_memory_limit_mib": config.memory_limit_mib,
            "site_oom_kills": self.oom_kills,
            "site_last_oom": self.last_oom,
        }
