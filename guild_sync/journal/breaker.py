"""The circuit breaker that stops a failing automatic sync from repeating forever.

The outage this exists for: a startup sync failed, the bot restarted, the sync ran again and
failed again, for 24 hours, and nobody was told. So after `threshold` consecutive failed
automatic runs of a kind, automatic runs of that kind are refused until a moderator's run
succeeds. A moderator is always allowed to try: a person watching is the signal that the
cause may be fixed.

An interrupted automatic run counts as a failure: a sync that kills its own process (out of
memory, a crash) never gets to record "failed", and is exactly the loop to break.

The state lives in the journal's store, so it survives restarts and is shared by processes on
the same Redis. Each result is applied by one atomic read-modify-write, so the run that opens
the breaker is the only one whose `record_result` reports it: the announcement is made once,
not again after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from guild_sync.journal.base import Journal
from guild_sync.journal.records import FAILED, INTERRUPTED, SUCCEEDED, BreakerState, Run, utcnow

DEFAULT_THRESHOLD = 3


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    last_error: str | None
    opened_at: datetime | None
    consecutive_failures: int


@dataclass(frozen=True, slots=True)
class BreakerChange:
    """The breaker of `kind` just opened (automatic runs now refused) or closed again."""

    kind: str
    opened: bool
    state: BreakerState
    run_id: str

    def describe(self) -> str:
        if not self.opened:
            return f"automatic {self.kind} runs are enabled again after a successful run"
        return (
            f"automatic {self.kind} runs are paused after {self.state.consecutive_failures} "
            f"consecutive failures (last error: {self.state.last_error or 'unknown'}); "
            "a successful manual run enables them again"
        )


def next_state(state: BreakerState, run: Run, threshold: int) -> BreakerState:
    """The breaker state after the finished `run`; pure, so a store may retry it."""
    if state.last_run_id == run.run_id:
        return state
    if run.status == SUCCEEDED:
        return BreakerState(kind=state.kind, last_run_id=run.run_id)
    if run.automatic and run.status in (FAILED, INTERRUPTED):
        failures = state.consecutive_failures + 1
        opened_at = state.opened_at
        if opened_at is None and failures >= threshold:
            opened_at = run.finished_at or utcnow()
        return replace(
            state,
            consecutive_failures=failures,
            opened_at=opened_at,
            last_error=run.last_error,
            last_run_id=run.run_id,
        )
    # A failed manual run or a cancelled run says nothing about automatic runs.
    return replace(state, last_run_id=run.run_id)


class Breaker:
    def __init__(self, journal: Journal, *, threshold: int = DEFAULT_THRESHOLD):
        if threshold < 1:
            raise ValueError("the breaker threshold must be at least 1")
        self.journal = journal
        self.threshold = threshold

    async def allows(self, kind: str, *, automatic: bool) -> Decision:
        state = await self.journal.load_breaker(kind)

        def decide(allowed: bool, reason: str) -> Decision:
            return Decision(
                allowed, reason, state.last_error, state.opened_at, state.consecutive_failures
            )

        if not automatic:
            return decide(True, "a manual run is always allowed")
        if state.is_open:
            assert state.opened_at is not None
            return decide(
                False,
                f"automatic {kind} runs are paused since {state.opened_at:%Y-%m-%d %H:%M} UTC "
                f"after {state.consecutive_failures} consecutive failures; "
                "a successful manual run enables them again",
            )
        return decide(
            True,
            f"{state.consecutive_failures} consecutive failures of {self.threshold} allowed",
        )

    async def record_result(self, run: Run) -> BreakerChange | None:
        """Count a finished run; returns the change only to the call that made it."""
        return (await self.record(run))[1]

    async def record(self, run: Run) -> tuple[BreakerState, BreakerChange | None]:
        """Count a finished run: the kind's state after it (whether or not this call changed
        it, for a gauge of the breaker's state), and the change only to the call that made it."""
        if run.is_running:
            raise ValueError(f"run {run.run_id} has not finished")
        before, after = await self.journal.transform_breaker(
            run.kind, lambda state: next_state(state, run, self.threshold)
        )
        if before.is_open == after.is_open:
            return after, None
        change = BreakerChange(kind=run.kind, opened=after.is_open, state=after, run_id=run.run_id)
        return after, change

    async def is_open(self, kind: str) -> bool:
        """Whether automatic runs of `kind` are refused now."""
        return (await self.journal.load_breaker(kind)).is_open
