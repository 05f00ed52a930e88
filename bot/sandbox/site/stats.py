"""What the sandbox site saw: request counts, the largest requests, faults, and its own memory.

Benchmarks and scenarios read these to check the bot's promises from the site's side (no request
above the chunk size, no empty bulk_patch, how much a role deletion cost the site).
"""

from __future__ import annotations

import resource
from collections import Counter
from dataclasses import dataclass, field
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
class SiteStats:
    requests: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    largest_request_items: int = 0
    largest_request_bytes: int = 0
    largest_bulk_patch: int = 0
    bulk_patch_items: int = 0
    role_cascade_users: int = 0

    def record_request(self, route: str) -> None:
        """Count a request under "METHOD /route/{template}" (or "METHOD unmatched")."""
        self.requests += 1
        self.by_route[route] += 1

    def record_body(self, items: int, size: int) -> None:
        self.largest_request_items = max(self.largest_request_items, items)
        self.largest_request_bytes = max(self.largest_request_bytes, size)

    def record_bulk_patch(self, items: int) -> None:
        """Count a bulk_patch list as received, whether or not it was then accepted."""
        self.largest_bulk_patch = max(self.largest_bulk_patch, items)
        self.bulk_patch_items += items

    def record_fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def record_role_cascade(self, users_rewritten: int) -> None:
        self.role_cascade_users += users_rewritten

    def snapshot(self) -> dict[str, Any]:
        peak_rss, current_rss = memory_bytes()
        return {
            "requests": self.requests,
            "by_route": dict(self.by_route),
            "faults": dict(self.faults),
            "largest_request_items": self.largest_request_items,
            "largest_request_bytes": self.largest_request_bytes,
            "largest_bulk_patch": self.largest_bulk_patch,
            "bulk_patch_items": self.bulk_patch_items,
            "role_cascade_users": self.role_cascade_users,
            "peak_rss_bytes": peak_rss,
            "current_rss_bytes": current_rss,
        }
