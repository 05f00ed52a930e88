"""What the sandbox site saw: request counts, the largest requests, faults, and its own memory.

Benchmarks, scenarios and tests read these to check the bot's promises from the site's side (no
request above the chunk size, no empty request, no more requests at once than the bot's window
allows, how much a role deletion cost the site): a claim about what the site received is read here,
never from the bot's own counters. The cost model's figures (modelled CPU, accounted memory, OOM
kills: cost.py) join these in `GET /api/_sandbox/stats`; `peak_rss_bytes` stays the sandbox
process's own memory.
"""

from __future__ import annotations

import resource
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


def memory_bytes() -> tuple[int, int | None]:
    """(peak RSS, current RSS) of this process in bytes; current is None off Linux.

    The kernel's VmHWM and VmRSS come first: ru_maxrss survives exec, so a site started by a
    process holding a million records would report that parent's size as its own peak.
    """
    peak = current = None
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024
                elif line.startswith("VmRSS:"):
                    current = int(line.split()[1]) * 1024
    except OSError:
        pass
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return peak, current


@dataclass
class RouteStats:
    """One route ("METHOD /template") as the site counted it, request by request.

    `in_flight` counts requests from their arrival to their answer (held ones and ones queued
    for a worker of the cost model included), so `peak_in_flight` is how many the site had to
    serve at once, whatever the client believes. `cpu_s` is the route's modelled site CPU and
    `oom_kills` its requests that died at the memory limit (cost.py; 0 without a cost model).
    """

    requests: int = 0
    items: int = 0
    largest_items: int = 0
    largest_bytes: int = 0
    empty_requests: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    cpu_s: float = 0.0
    oom_kills: int = 0

    def arrived(self) -> None:
        self.requests += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def answered(self) -> None:
        self.in_flight -= 1

    def body(self, items: int, size: int) -> None:
        self.items += items
        self.largest_items = max(self.largest_items, items)
        self.largest_bytes = max(self.largest_bytes, size)
        if items == 0:
            self.empty_requests += 1


@dataclass
class SiteStats:
    requests: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    routes: dict[str, RouteStats] = field(default_factory=dict)
    faults: Counter[str] = field(default_factory=Counter)
    largest_request_items: int = 0
    largest_request_bytes: int = 0
    largest_bulk_patch: int = 0
    bulk_patch_items: int = 0
    role_cascade_users: int = 0
    misreadable: Counter[str] = field(default_factory=Counter)
    """Requests the site takes otherwise than a client would mean them, by kind:
    "body_id_differs" (a PUT/PATCH body id other than the URL's: the site writes that other
    row) and "duplicate_role_ids" (a user's `roles` naming an id twice: a role deletion then
    leaves it once). Counted whatever the answer (the body's valid fields are looked at); the
    site answers them as the real one does. The bot must never send one."""
    user_writes_in_flight: int = 0
    user_writes_peak_in_flight: int = 0
    """User writes (bulk creates and bulk_patches) served at once: the bot's window covers
    them together (one request at a time per chunk), so this is what it bounds."""

    def route(self, route: str) -> RouteStats:
        return self.routes.setdefault(route, RouteStats())

    def record_request(self, route: str) -> None:
        """Count a request under "METHOD /route/{template}" (or "METHOD unmatched")."""
        self.requests += 1
        self.by_route[route] += 1

    def request_arrived(self, route: str, *, user_write: bool) -> None:
        self.route(route).arrived()
        if user_write:
            self.user_writes_in_flight += 1
            self.user_writes_peak_in_flight = max(
                self.user_writes_peak_in_flight, self.user_writes_in_flight
            )

    def request_answered(self, route: str, *, user_write: bool) -> None:
        self.route(route).answered()
        if user_write:
            self.user_writes_in_flight -= 1

    def record_body(self, route: str, items: int, size: int) -> None:
        """A request body as received: `items` is a list's length, 1 for an object, 0 for
        nothing at all (an empty list or no data: an empty request)."""
        self.route(route).body(items, size)
        self.largest_request_items = max(self.largest_request_items, items)
        self.largest_request_bytes = max(self.largest_request_bytes, size)

    def record_bulk_patch(self, items: int) -> None:
        """Count a bulk_patch list as received, whether or not it was then accepted."""
        self.largest_bulk_patch = max(self.largest_bulk_patch, items)
        self.bulk_patch_items += items

    def record_cpu(self, route: str, seconds: float) -> None:
        """Modelled site CPU served to a request on `route` (cost.py)."""
        self.route(route).cpu_s += seconds

    def record_oom(self, route: str) -> None:
        """A request on `route` died with its worker at the site's memory limit (cost.py)."""
        self.route(route).oom_kills += 1

    def record_fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def record_misreadable(self, kind: str) -> None:
        self.misreadable[kind] += 1

    def record_role_cascade(self, users_rewritten: int) -> None:
        self.role_cascade_users += users_rewritten

    def empty_requests(self) -> int:
        return sum(route.empty_requests for route in self.routes.values())

    def snapshot(self) -> dict[str, Any]:
        peak_rss, current_rss = memory_bytes()
        return {
            "requests": self.requests,
            "by_route": dict(self.by_route),
            "routes": {name: asdict(route) for name, route in self.routes.items()},
            "faults": dict(self.faults),
            "largest_request_items": self.largest_request_items,
            "largest_request_bytes": self.largest_request_bytes,
            "largest_bulk_patch": self.largest_bulk_patch,
            "bulk_patch_items": self.bulk_patch_items,
            "empty_requests": self.empty_requests(),
            "user_writes_peak_in_flight": self.user_writes_peak_in_flight,
            "role_cascade_users": self.role_cascade_users,
            "misreadable_requests": dict(self.misreadable),
            "peak_rss_bytes": peak_rss,
            "current_rss_bytes": current_rss,
        }
