"""The bot's promises to the site, checked from what the site itself counted (its stats
snapshot), never from the engine's own counters."""

from __future__ import annotations

from typing import Any

USER_WRITE_ROUTES = ("POST /api/bot/users", "PATCH /api/bot/users/bulk_patch")


def broken_bounds(stats: dict[str, Any], *, chunk_size: int, max_in_flight: int) -> list[str]:
    """What the site saw that breaks the bounds: a user write above the chunk size, an empty
    request, more user writes at once than the window's maximum. Empty when all held."""
    problems = []
    routes = stats["routes"]
    for route in USER_WRITE_ROUTES:
        largest = routes.get(route, {}).get("largest_items", 0)
        if largest > chunk_size:
            problems.append(f"{route}: a request of {largest} items (chunk size {chunk_size})")
    if stats["empty_requests"]:
        problems.append(f"{stats['empty_requests']} empty requests")
    peak = stats["user_writes_peak_in_flight"]
    if peak > max_in_flight:
        problems.append(f"{peak} user writes in flight at once (maximum {max_in_flight})")
    return problems
