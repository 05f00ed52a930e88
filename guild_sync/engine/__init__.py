"""The sync engine: keeps the site's roles and users equal to the guild's, in bounded chunks.

It works on plain records (`guild_sync.site.records.Role`, `User`) read through a
`GuildState`, and talks to the site only through `SiteClient`; it never imports discord.py.

Usage by the Discord extension::

    engine = SyncEngine(client, guild_state, chunk_size=1000, max_in_flight=3)
    engine.subscribe(reporter.on_event)        # sync or async callback, one queue each
    engine.start()                             # background sender for events
    await engine.sync_roles(trigger="startup") # roles first: users name roles
    report = await engine.sync_users(trigger="startup")
    engine.enqueue_member(member_id, {"name"})             # gateway update, never blocks
    engine.enqueue_member(member_id, "all", upsert=True)   # member join
    await engine.delete_role(role_id)          # strip holders in chunks, then DELETE
    plan = await engine.plan_users()           # dry-run counts for a destructive-diff guard
    await engine.close()

How a write travels (one path for full syncs and events):
- `diff.iter_user_changes` merges the site's pages (ascending ids) against the guild's sorted
  member ids and yields who differs and in which fields; memory is one page plus the queue.
- `queue.WriteQueue` coalesces per user and reads the values from the guild only when the chunk
  is built, so a newer event is never overwritten by an older value.
- `sender.ChunkSender` sends chunks of at most `chunk_size` (never empty), with an adaptive
  (AIMD) number in flight, turning 404s into creates and isolating 400s to the bad items.
- `progress` events (RunStarted, PlanUpdated, ChunkDone, Retrying, BadRecords, ChunkFailed,
  RunFinished) go to subscribers and to `logging`; a run method returns its RunFinished.

Runs are level-triggered: a cancelled or failed run needs no checkpoint, the next run recomputes
what still differs. Only one run (users, roles, role deletion) executes at a time.
"""

from guild_sync.engine.engine import RoleStripIncomplete, SyncEngine
from guild_sync.engine.guild import GuildState, InMemoryGuild
from guild_sync.engine.plan import Plan
from guild_sync.engine.progress import (
    BadRecords,
    ChunkDone,
    ChunkFailed,
    LeaversWithheld,
    PlanUpdated,
    ProgressEvent,
    RateMeter,
    Retrying,
    RunFinished,
    RunReport,
    RunStarted,
)
from guild_sync.engine.roles import RoleDiff

Engine = SyncEngine

__all__ = [
    "BadRecords",
    "ChunkDone",
    "ChunkFailed",
    "Engine",
    "GuildState",
    "InMemoryGuild",
    "LeaversWithheld",
    "Plan",
    "PlanUpdated",
    "ProgressEvent",
    "RateMeter",
    "Retrying",
    "RoleDiff",
    "RoleStripIncomplete",
    "RunFinished",
    "RunReport",
    "RunStarted",
    "SyncEngine",
]
