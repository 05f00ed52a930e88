"""Injected failures: the sandbox site answers some requests the way an overloaded site does.

Every decision comes from one seeded `random.Random`, drawn once per eligible request, so a run that
sends the same requests in the same order meets the same faults. Faults can be switched at run time
(`POST /api/_sandbox/faults`), which lets a scenario break the site mid-sync and then heal it.
"""

from __future__ import annotations

import enum
import random
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


class Fault(enum.Enum):
    SERVER_ERROR = "500"
    RATE_LIMITED = "429"
    SLOW = "slow"
    DROP = "drop"
    REJECTED_WRITE = "reject_write"
    MALFORMED_PAGE = "malformed_page"


class Malformed(enum.Enum):
    """How a user page (`GET bot/users`) comes back broken when `malformed_pages` is set: what
    a misconfigured proxy, a half-deployed site or a schema change would send."""

    HTML_500 = "html_500"
    INVALID_JSON = "invalid_json"
    WRONG_TYPES = "wrong_types"
    MISSING_FIELDS = "missing_fields"


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Probabilities (0..1, at most 1 in total) of each fault per request, and their parameters.

    `drop` closes the connection without an answer after the request was applied, so the client
    cannot tell whether its write landed. `reject_writes` answers every write with a 500 (a site
    that is down for writes), whatever the probabilities say. `malformed_pages` (a `Malformed`
    value, "" for none) breaks every user page from page `malformed_from_page` on, whatever the
    probabilities say. `drop_times` > 0 drops the answers of the next that many requests on
    `drop_route` ("METHOD /api/template", as the stats name routes), whatever the probabilities
    say: a lost answer placed on one request, not drawn at random.
    """

    error_500: float = 0.0
    rate_limit_429: float = 0.0
    retry_after: float = 0.2
    slow: float = 0.0
    slow_delay: float = 0.5
    drop: float = 0.0
    write_only: bool = False
    reject_writes: bool = False
    malformed_pages: str = ""
    malformed_from_page: int = 1
    drop_route: str = ""
    drop_times: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        chances = (self.error_500, self.rate_limit_429, self.slow, self.drop)
        if any(not 0.0 <= p <= 1.0 for p in chances):
            raise ValueError("fault probabilities must be between 0 and 1")
        if sum(chances) > 1.0 + 1e-9:
            raise ValueError("fault probabilities must add up to at most 1")
        if self.retry_after < 0 or self.slow_delay < 0:
            raise ValueError("retry_after and slow_delay must not be negative")
        if self.malformed_pages and self.malformed_pages not in {m.value for m in Malformed}:
            kinds = ", ".join(m.value for m in Malformed)
            raise ValueError(f"malformed_pages must be one of: {kinds} (or empty)")
        if self.malformed_from_page < 1:
            raise ValueError("malformed_from_page must be at least 1")
        if self.drop_times < 0:
            raise ValueError("drop_times must not be negative")

    def updated(self, changes: dict[str, Any]) -> FaultConfig:
        """A copy with `changes` (JSON from the control endpoint) applied; ValueError if invalid."""
        types = {f.name: f.type for f in fields(self)}
        unknown = set(changes) - set(types)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            expected = types[name]
            if expected == "bool" and not isinstance(value, bool):
                raise ValueError(f"{name} must be a boolean")
            if expected == "str" and not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
            if expected == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{name} must be an integer")
            if expected == "float":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{name} must be a number")
                value = float(value)
            checked[name] = value
        return replace(self, **checked)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Faults:
    """The live fault settings and the random stream that decides which request fails."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.config = config or FaultConfig()
        self._rng = random.Random(self.config.seed)

    def __repr__(self) -> str:
        return f"Faults({self.config!r})"

    def configure(self, config: FaultConfig, *, reseed: bool) -> None:
        self.config = config
        if reseed:
            self._rng = random.Random(config.seed)

    def malformed_page(self, page: int) -> Malformed | None:
        """How to break user page `page` (1-based), or None to answer it as it is."""
        config = self.config
        if not config.malformed_pages or page < config.malformed_from_page:
            return None
        return Malformed(config.malformed_pages)

    def decide(self, *, route: str, is_write: bool) -> Fault | None:
        config = self.config
        if config.drop_times and route == config.drop_route:
            self.config = replace(config, drop_times=config.drop_times - 1)
            return Fault.DROP
        if is_write and config.reject_writes:
            return Fault.REJECTED_WRITE
        if config.write_only and not is_write:
            return None
        buckets = (
            (config.error_500, Fault.SERVER_ERROR),
            (config.rate_limit_429, Fault.RATE_LIMITED),
            (config.slow, Fault.SLOW),
            (config.drop, Fault.DROP),
        )
        if not any(chance for chance, _ in buckets):
            return None
        draw = self._rng.random()
        for chance, fault in buckets:
            if draw < chance:
                return fault
            draw -= chance
        return None
