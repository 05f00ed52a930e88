"""Per-route, per-channel rate limit buckets with Discord's headers.

discord.py learns a bucket from `X-RateLimit-*` headers on successful responses and waits before
it would exceed it, so an honest emulator rarely sends 429s. `advertise=False` withholds the
headers (as when a bucket is shared with traffic the client cannot see), exercising the 429 path.

Two limits are off unless a test switches them on: the follow-ups and edits of an interaction's
responses (`INTERACTION_RULES`, per interaction token, as Discord keys webhook limits on the
webhook id and token), and the limit on edits of messages older than an hour (`OldMessageEdits`,
error 30046). Global 429s are injected (`global_rate_limit`), never counted from traffic.
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
INTERACTION_RULES: Mapping[str, RateLimitRule] = {
    "webhook_send": RateLimitRule(limit=5, per=5.0),
    "webhook_edit": RateLimitRule(limit=5, per=5.0),
}
"""Follow-up messages (POST /webhooks/{app}/{token}) and edits of an interaction's messages
(PATCH .../messages/{id}), per interaction token. Discord publishes no numbers for them (its
rate limit page says to read the headers); five per five seconds, like messages."""
GLOBAL_BUCKET = "global"
OLD_MESSAGE_BUCKET = "old_message_edit"
MAX_OLD_MESSAGE_EDITS = 30046
OLD_MESSAGE_AGE_S = 3600.0
RATE_LIMITED = "You are being rate limited."
OLD_MESSAGE_EDITS_REFUSED = (
    "Maximum number of edits to messages older than 1 hour reached. Try again later"
)


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
    is_global: bool = False
    message: str = RATE_LIMITED
    code: int | None = None
    """A JSON error code, which Discord adds to some limits' 429s (30046, 20028)."""

    def error_body(self) -> dict[str, object]:
        body: dict[str, object] = {
            "message": self.message,
            "retry_after": self.retry_after,
            "global": self.is_global,
        }
        if self.code is not None:
            body["code"] = self.code
        return body


def global_rate_limit(retry_after: float) -> RateLimitDecision:
    """Discord's answer when the bot's global limit is exhausted: `global: true` in the body,
    `X-RateLimit-Global` and `X-RateLimit-Scope: global`, no bucket headers. discord.py stops
    every request (its `_global_over` event) until `retry_after` has passed, then retries."""
    headers = {
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Global": "true",
        "X-RateLimit-Scope": "global",
        "Via": "1.1 google",
    }
    return RateLimitDecision(False, headers, round(retry_after, 3), is_global=True)


@dataclass
class OldMessageEdits:
    """Discord's limit on edits of messages older than an hour (error 30046, "Maximum number of
    edits to messages older than 1 hour reached. Try again later"). Its size is unpublished:
    `allowed` such edits are accepted after it is switched on, every later one is refused.
    Discord answers it as a 429 with the code in the body (as reported from discord.py and
    other clients), so discord.py sleeps `retry_after` and retries it up to five times, then
    raises HTTPException(429, code 30046)."""

    allowed: int
    retry_after: float
    used: int = 0

    def hit(self) -> RateLimitDecision:
        if self.used < self.allowed:
            self.used += 1
            return RateLimitDecision(allowed=True, headers={})
        headers = {
            "Retry-After": str(max(1, math.ceil(self.retry_after))),
            "X-RateLimit-Scope": "shared",
            "Via": "1.1 google",
        }
        return RateLimitDecision(
            False,
            headers,
            round(self.retry_after, 3),
            message=OLD_MESSAGE_EDITS_REFUSED,
            code=MAX_OLD_MESSAGE_EDITS,
        )


@dataclass(slots=True)
class _Window:
    started: float
    used: int = 0


@dataclass
class RateLimiter:
    rules: dict[str, RateLimitRule] = field(default_factory=lambda: dict(DEFAULT_RULES))
    advertise: bool = True
    clock: Callable[[], float] = time.monotonic
    hits: list[RateLimitHit] = field(default_factory=list)
    old_message_edits: OldMessageEdits | None = None
    """Off (None) unless a test switches the 30046 limit on."""
    _windows: dict[tuple[str, int], _Window] = field(default_factory=dict)

    def record(self, bucket: str, major_id: int, decision: RateLimitDecision) -> None:
        """Counts a 429 answered outside the per-route buckets (global, old message edits)."""
        self.hits.append(RateLimitHit(bucket, major_id, decision.retry_after, self.clock()))

    def old_message_edit(self, channel_id: int) -> RateLimitDecision:
        """One edit of a message older than an hour, against the 30046 limit if it is on. A
        refused one gives back its place in the channel's edit bucket: Discord's 429s of scope
        `shared` leave the route's bucket as it was (its `X-RateLimit-Remaining` above 0)."""
        if self.old_message_edits is None:
            return RateLimitDecision(allowed=True, headers={})
        decision = self.old_message_edits.hit()
        if not decision.allowed:
            self.record(OLD_MESSAGE_BUCKET, channel_id, decision)
            window = self._windows.get(("message_edit", channel_id))
            if window is not None and window.used > 0:
                window.used -= 1
        return decision

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
