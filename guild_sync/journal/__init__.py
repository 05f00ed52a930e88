"""Run journal, single-flight locks and circuit breaker for the sync cog.

Knows nothing about Discord or HTTP: the cog records runs here, takes a lock per kind of run
so two processes never run the same sync at once, and asks the breaker before an automatic
run, so a sync that keeps failing stops and says so instead of repeating at every restart.
"""

from guild_sync.journal.base import Journal, JournalUnavailable, LockBusy
from guild_sync.journal.breaker import Breaker, BreakerChange, Decision
from guild_sync.journal.factory import open_journal
from guild_sync.journal.lease import Lease
from guild_sync.journal.records import (
    CANCELLED,
    FAILED,
    INTERRUPTED,
    RUNNING,
    SUCCEEDED,
    BreakerState,
    CorruptRecord,
    LockHolder,
    RecordError,
    Run,
    process_owner,
)

__all__ = [
    "CANCELLED",
    "FAILED",
    "INTERRUPTED",
    "RUNNING",
    "SUCCEEDED",
    "Breaker",
    "BreakerChange",
    "BreakerState",
    "CorruptRecord",
    "Decision",
    "Journal",
    "JournalUnavailable",
    "Lease",
    "LockBusy",
    "LockHolder",
    "RecordError",
    "Run",
    "open_journal",
    "process_owner",
]
