"""Per-route, per-channel rate limit buckets with Discord's headers.

discord.py learns a bucket from `X-RateLimit-*` headers on successful responses and waits before
it would exceed it, so an honest emulator rarely sends 429s. `advertise=False` withholds the
headers (as when a bucket is shared with traffic the client cannot see), exercising the 429 path.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    limit: int
    per: float


DEFAULT_RULES: Mapping[str, RateLimitRule] = {
    "message_send": RateLimitRule(limit=5, per=5.0),
    "message_edit": RateLimitRule(limit=5, per=5.0),
}


@dataclass(frozen=True, slots=True)
class RateLimitHit:
    """One 429 the emulator answered."""

    bucket: str
    major_id: int
    retry_after: float
    at: float


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    allowed: bool
    headers: dict[str, str]
    retry_after: float = 0.0

    def error_body(self) -> dict[str, object]:
        return {
            "message": "You are being rate limited.",
            "retry_after": self.retry_after,
            "global": False,
        }


@dataclass(slots=True)
class _Window:
    started: float
    used: int = 0


@dataclass
class RateLimiter:
    rules: Mapping[str, RateLimitRule] = field(default_factory=lambda: dict(DEFAULT_RULES))
    advertise: bool = True
    clock: Callable[[], float] = time.monotonic
    hits: list[RateLimitHit] = field(default_factory=list)
    _windows: dict[tuple[str, int], _Window] = field(default_factory=dict)

    def hit(self, bucket: str, major_id: int) -> RateLimitDecision:
        """Counts one request against a fixed window that opens with the first request after the
        previous window closed (Discord's buckets behave this way)."""
        rule = self.rules.get(bucket)
        if rule is None:
            return RateLimitDecision(allowed=True, headers={})
        now = self.clock()
        window = self._windows.get((bucket, major_id))
        if window is None or now - window.started >= rule.per:
            window = self._windows[(bucket, major_id)] = _Window(started=now)
        reset_after = max(0.0, window.started + rule.per - now)
        if window.used >= rule.limit:
            retry_after = round(max(reset_after, 0.001), 3)
            self.hits.append(RateLimitHit(bucket, major_id, retry_after, now))
            headers = self._headers(bucket, rule, 0, reset_after)
            headers["Retry-After"] = str(math.ceil(retry_after))
            headers["Via"] = "1.1 google"
            headers["X-RateLimit-Scope"] = "user"
            return RateLimitDecision(allowed=False, headers=headers, retry_after=retry_after)
        window.used += 1
        if not self.advertise:
            return RateLimitDecision(allowed=True, headers={})
        headers = self._headers(bucket, rule, rule.limit - window.used, reset_after)
        return RateLimitDecision(allowed=True, headers=headers)

    @staticmethod
    def _headers(
        bucket: str, rule: RateLimitRule, remaining: int, reset_after: float
    ) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(rule.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": hashlib.sha1(bucket.encode()).hexdigest()[:16],
        }
