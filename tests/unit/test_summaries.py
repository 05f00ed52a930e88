"""The one-line summaries of role runs, from the counts the engine reports.

The engine counts a stripped holder who is still a member as `updated` and one who already left
the guild as `left` (see tests/engine: a deletion of a role held by 50 members and 5 former
members reports updated=50, left=5)."""

import asyncio

from guild_sync.engine.progress import BadRecords, ChunkDone, RunFinished
from guild_sync.exts.sync._reporter import RunReporter, summary


def test_a_role_deletion_counts_the_former_members_it_stripped():
    finished = RunFinished(
        "d", kind="role-delete", trigger="event", status="finished", updated=50, left=5,
        deleted_roles=1,
    )  # fmt: skip
    assert "removed the role from 55 users, then deleted it" in summary(finished)


def test_a_role_sync_tells_updated_roles_from_stripped_former_members():
    # 1 role updated, 1 deleted after stripping it from 3 members and 2 former members.
    finished = RunFinished(
        "r", kind="roles", trigger="command", status="finished", created=0, updated=1 + 3,
        left=2, deleted_roles=1,
    )  # fmt: skip
    text = summary(finished, users_stripped=5)
    assert "Wrote roles: 0 created, 1 updated, 1 deleted (first removed from 5 users)" in text


def test_a_role_sync_with_a_rejected_holder_still_counts_the_holders_it_stripped():
    class NoChannel:
        async def send(self, *_: object, **__: object) -> None:
            return None

    reporter = RunReporter(NoChannel(), title="Role sync", headline="roles", run_id="r")
    # One chunk of 4 holders with one the site rejected (not ok), one chunk of 1 (ok).
    for event in (
        BadRecords("r", (7,), 400, "{}"),
        ChunkDone("r", False, 4, 0.1, 1),
        ChunkDone("r", True, 1, 0.1, 1),
    ):
        asyncio.run(reporter.feed(event))
    finished = RunFinished(
        "r", kind="roles", trigger="command", status="partial", updated=1 + 3, left=1, failed=1,
    )  # fmt: skip
    text = reporter.render(finished)
    assert "1 updated, 0 deleted (first removed from 4 users), 1 users failed" in text, text
