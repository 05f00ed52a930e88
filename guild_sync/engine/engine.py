"""The facade the Discord extension drives: runs, events, and the background sender."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Literal

from guild_sync.engine.diff import (
    ALL_FIELDS,
    LEFT_FIELDS,
    DiffStats,
    Kind,
    PageOrderError,
    UserChange,
    iter_user_changes,
)
from guild_sync.engine.guild import AsSiteStores, GuildState
from guild_sync.engine.leavers import HeldLeaves, MemberCheck
from guild_sync.engine.plan import Plan, RecordedChanges
from guild_sync.engine.progress import (
    LeaversWithheld,
    PlanUpdated,
    ProgressHub,
    Retrying,
    RunFinished,
    RunReport,
    RunStarted,
    Subscriber,
)
from guild_sync.engine.queue import Op, WriteQueue
from guild_sync.engine.role_writes import RoleWrites
from guild_sync.engine.roles import diff_roles
from guild_sync.engine.run import Run
from guild_sync.engine.sender import AdaptiveWindow, ChunkSender, current_chunk
from guild_sync.site.client import SiteClient
from guild_sync.site.errors import SiteAPIError
from guild_sync.site.records import USER_FIELDS, Role

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 30.0
"""How long a cancelled run waits for its requests already in flight before reporting."""


class SyncEngine:
    def __init__(
        self,
        client: SiteClient,
        guild: GuildState,
        *,
        chunk_size: int = 1000,
        max_in_flight: int = 3,
        page_size: int = 2500,
        linger: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.rng = rng or random.Random()
        """Draws the sample of leavers looked up on Discord before they are written."""
        self.guild = AsSiteStores(guild)
        self.chunk_size = chunk_size
        self.page_size = page_size
        self.hub = ProgressHub()
        self.window = AdaptiveWindow(max_in_flight)
        self.queue = WriteQueue(chunk_size, chunk_size * (max_in_flight + 1), linger)
        self.events = Run("events", "events", "gateway")
        self.role_writes = RoleWrites()
        """Role writes in progress; the cog announces a role event's write as it sees it."""
        self._sender = ChunkSender(client, self.guild, self.hub, self.window, self.role_writes)
        self._stripping: set[int] = set()
        self._run_lock = asyncio.Lock()
        self._run_numbers = itertools.count(1)
        self._dispatcher: asyncio.Task[None] | None = None
        self._guild_readable = asyncio.Event()
        self._guild_readable.set()
        self._sending: set[asyncio.Task[None]] = set()
        self._chained_retry_hook = client.on_retry
        client.on_retry = self._on_retry

    # -- lifecycle ---------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        return self.hub.subscribe(callback)

    def start(self) -> None:
        """Start the background sender (also started by the first run or event)."""
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    def pause(self) -> None:
        """Build no more writes from the guild until `resume` (its cache is being replaced):
        queued writes wait, the requests already sent are answered."""
        self._guild_readable.clear()

    def resume(self) -> None:
        self._guild_readable.set()

    async def flush(self) -> None:
        """Send queued event writes now and wait until the site answered them."""
        self.start()
        await self._drain(self.events)

    async def close(self, flush_within_s: float = 10.0) -> None:
        """Flush queued events (for at most `flush_within_s`), then stop sending."""
        if self._dispatcher is not None:
            try:
                async with asyncio.timeout(flush_within_s):
                    await self.flush()
            except TimeoutError:
                log.warning("closing with %d queued writes unsent", len(self.queue))
            self._dispatcher.cancel()
            for task in list(self._sending):
                task.cancel()
            await asyncio.gather(self._dispatcher, *self._sending, return_exceptions=True)
        self.client.on_retry = self._chained_retry_hook
        await self.hub.close()

    # -- events ------------------------------------------------------------------------------

    def enqueue_member(
        self, user_id: int, fields: Iterable[str] | Literal["all"] = "all", *, upsert: bool = False
    ) -> None:
        """Queue a member's write from a gateway event; never blocks, sent within `linger`.

        `upsert=True` for joins: the site may or may not have the user, so it is bulk created
        (existing ids are skipped) and then patched with every field.
        """
        chosen = ALL_FIELDS if fields == "all" else frozenset(fields)
        unknown = chosen - ALL_FIELDS
        if unknown:
            raise ValueError(f"unknown user fields {sorted(unknown)}; known: {USER_FIELDS}")
        self.queue.put(user_id, Kind.UPSERT if upsert else Kind.PATCH, chosen, self.events)
        self.start()

    # -- runs --------------------------------------------------------------------------------

    async def plan_users(self, *, record: bool = False) -> Plan:
        """The user diff's counts and a sample, without writing anything; with `record`, the
        writes too, for the run the plan is made for (`sync_users(plan=...)`)."""
        stats = DiffStats()
        plan = Plan(changes=RecordedChanges() if record else None)
        async for change in iter_user_changes(self.client, self.guild, self.page_size, stats):
            plan.note(change, self.guild)
            if plan.changes is not None:
                plan.changes.add(change)
        plan.count(stats)
        return plan

    async def sync_users(
        self,
        dry_run: bool = False,
        trigger: str = "manual",
        run_id: str | None = None,
        plan: Plan | None = None,
    ) -> RunReport:
        """Write what differs. Given a recorded plan (the guard's), send its writes instead of
        reading the site's pages a second time."""
        if dry_run:
            return await self._dry_run("users", trigger, self._plan_report, run_id)
        async with self._run("users", trigger, run_id) as run:
            if plan is not None and plan.changes is not None and plan.stats is not None:
                stats = plan.stats  # every write is known before the first is sent
                self.hub.publish(PlanUpdated(run.run_id, stats.planned(), stats.scanned, True))
                await self._queue_user_changes(run, stats, plan.changes.replay())
            else:
                await self._walk_and_queue_user_changes(run)
        return run.report

    async def _walk_and_queue_user_changes(self, run: Run) -> None:
        """The streamed diff: the site's pages read once, writes queued as they are found."""
        stats = DiffStats()
        scanned_reported = 0

        def page_done() -> None:
            nonlocal scanned_reported
            if stats.scanned - scanned_reported >= self.page_size:
                scanned_reported = stats.scanned
                self.hub.publish(
                    PlanUpdated(
                        run.run_id,
                        stats.planned(),
                        stats.scanned,
                        site_total=stats.site_total,
                        by_field=dict(stats.by_field),
                    )
                )

        changes = iter_user_changes(
            self.client, self.guild, self.page_size, stats, on_page=page_done
        )
        await self._queue_user_changes(run, stats, changes)

    async def _queue_user_changes(
        self, run: Run, stats: DiffStats, changes: AsyncIterator[UserChange]
    ) -> None:
        """Queue a user sync's writes as they come, the leaves held for the sample check."""
        check = self.guild.member_check
        held = HeldLeaves() if check is not None else None
        async for change in changes:
            if held is not None and change.leave:
                held.add(change.user_id)  # sent once a sample is confirmed (leavers.py)
                continue
            await self.queue.put_waiting(change.user_id, change.kind, change.fields, run)
        planned = stats.planned()
        if held and check is not None:
            await self._write_leaves_if_confirmed(run, held, check)
            planned["leave"] -= run.leaves_withheld
        run.counts["unchanged"] = stats.unchanged
        self.hub.publish(
            PlanUpdated(
                run.run_id,
                planned,
                stats.scanned,
                True,
                site_total=stats.site_total,
                by_field=dict(stats.by_field),
            )
        )

    async def _write_leaves_if_confirmed(
        self, run: Run, held: HeldLeaves, check: MemberCheck
    ) -> None:
        """Queue the held leaves if a sample of them is gone from Discord; else withhold them
        all and say so (the run's other writes go on)."""
        verdict = await held.check(check, self.rng)
        if verdict.confirmed:
            for user_id in held.ids:
                await self.queue.put_waiting(user_id, Kind.PATCH, LEFT_FIELDS, run)
            return
        run.leaves_withheld = verdict.leaving
        self.hub.publish(
            LeaversWithheld(
                run.run_id, verdict.leaving, verdict.sampled, verdict.still_members, verdict.error
            )
        )

    async def sync_roles(
        self, dry_run: bool = False, trigger: str = "manual", run_id: str | None = None
    ) -> RunReport:
        """Create and update roles one request each, then delete vanished ones (strip first)."""
        if dry_run:
            return await self._dry_run("roles", trigger, self._role_plan_report, run_id)
        async with self._run("roles", trigger, run_id) as run:
            role_diff = diff_roles(self.guild.roles(), await self.client.list_roles())
            self.hub.publish(PlanUpdated(run.run_id, role_diff.counts(), 0, final=True))
            for role in role_diff.created:
                await self.client.create_role(role)
                run.counts["created"] += 1
            for role in role_diff.updated:
                await self.client.update_role(role)
                run.counts["updated"] += 1
            if role_diff.deleted:
                await self._strip_and_delete(run, frozenset(role_diff.deleted))
        return run.report

    async def write_role(self, role_id: int) -> Role | None:
        """Create or update one role from a gateway event, at once and outside any run.

        A role event must reach the site before the member updates that name the role (they are
        sent after the queue's linger), so it does not wait behind a long run: one idempotent
        request, its current value read from the guild. Member writes naming the role wait until
        it settles (see role_writes.py). Returns what was written, or None if the guild no
        longer has the role (its deletion follows as a run of its own).
        """
        with self.role_writes.writing(role_id):
            role = next((r for r in self.guild.roles() if r.id == role_id), None)
            if role is None:
                return None
            try:
                await self.client.update_role(role)
            except SiteAPIError as error:
                if error.status != 404:
                    raise
                await self.client.create_role(role)
            return role

    async def delete_role(
        self, role_id: int, trigger: str = "role deleted", run_id: str | None = None
    ) -> RunReport:
        """Strip the role from every holder with chunked bulk_patch, then DELETE it.

        The site's own DELETE cascade saves each holder separately inside one request; done
        this way the DELETE finds no holders left.
        """
        async with self._run("role-delete", trigger, run_id) as run:
            await self._strip_and_delete(run, frozenset({role_id}))
        return run.report

    async def _strip_and_delete(self, run: Run, role_ids: frozenset[int]) -> None:
        self._stripping |= role_ids
        try:
            holders = scanned = 0
            async for page in self.client.iter_user_pages(self.page_size):
                for user in page:
                    scanned += 1
                    if user.roles.isdisjoint(role_ids):
                        continue
                    holders += 1
                    await self.queue.put_waiting(
                        user.id, Kind.PATCH, frozenset({"roles"}), run, user.roles - role_ids
                    )
                plan = {"strip": holders}
                self.hub.publish(PlanUpdated(run.run_id, plan, scanned, site_total=page.site_total))
            self.hub.publish(PlanUpdated(run.run_id, {"strip": holders}, scanned, final=True))
            await self._drain(run)
            if run.counts["failed"]:
                raise RoleStripIncomplete(
                    f"roles {sorted(role_ids)} not deleted: "
                    f"{run.counts['failed']} holders could not be stripped"
                )
            for role_id in sorted(role_ids):
                await self.client.delete_role(role_id)
                run.deleted_roles += 1
        finally:
            self._stripping -= role_ids

    # -- internals ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _run(self, kind: str, trigger: str, run_id: str | None) -> AsyncIterator[Run]:
        """One run at a time: publish its start, drain its writes, publish how it ended.

        `run_id` lets the caller name the run (its journal id) before it starts."""
        async with self._run_lock:
            run = Run(run_id or f"{kind}-{next(self._run_numbers)}", kind, trigger)
            self.hub.publish(RunStarted(run.run_id, kind, trigger))
            self.start()
            status, error = "finished", ""
            try:
                try:
                    yield run
                except (SiteAPIError, PageOrderError, RoleStripIncomplete) as failure:
                    error = str(failure)
                    status = "failed"
                    log.error("%s stopped: %s", run.run_id, error)
                # Outside the handler above, so a cancel while a failed run drains is caught.
                await self._drain(run)
            except asyncio.CancelledError:
                await self._abandon(run)
                run.report = self._finish(run, "cancelled", error)
                raise
            run.report = self._finish(run, status, error)

    async def _drain(self, run: Run) -> None:
        self.queue.urgent += 1
        self.queue.wake()
        try:
            await run.drained()
        finally:
            self.queue.urgent -= 1

    async def _abandon(self, run: Run) -> None:
        self.queue.abandon(run, self.events)
        try:
            async with asyncio.timeout(CANCEL_GRACE_S):
                await asyncio.shield(run.drained())
        except (TimeoutError, asyncio.CancelledError):
            log.warning("%s cancelled with %d writes unanswered", run.run_id, run.outstanding)

    def _finish(self, run: Run, status: str, error: str) -> RunFinished:
        counts = run.counts
        written = counts["created"] + counts["updated"] + counts["left"]
        if status == "finished" and counts["failed"]:
            status = "partial" if written else "failed"
        if status == "finished" and run.leaves_withheld:
            status = "partial"  # what differs was written, bar the leaves it could not confirm
        elapsed = run.elapsed
        report = RunFinished(
            run.run_id,
            kind=run.kind,
            trigger=run.trigger,
            status=status,
            created=counts["created"],
            updated=counts["updated"],
            left=counts["left"],
            unchanged=counts["unchanged"],
            skipped=counts["skipped"],
            failed=counts["failed"],
            deleted_roles=run.deleted_roles,
            leaves_withheld=run.leaves_withheld,
            duration_s=elapsed,
            rate=written / elapsed if elapsed > 0 else 0.0,
            error=error,
        )
        self.hub.publish(report)
        return report

    async def _dry_run(
        self, kind: str, trigger: str, plan: Callable[[str], Any], run_id: str | None
    ) -> RunReport:
        run_id = run_id or f"{kind}-dry-{next(self._run_numbers)}"
        started = time.monotonic()
        self.hub.publish(RunStarted(run_id, kind, trigger))
        try:
            status, error, details = "finished", "", await plan(run_id)
        except (SiteAPIError, PageOrderError) as failure:
            status, error, details = "failed", str(failure), None
        report = RunFinished(
            run_id,
            kind=kind,
            trigger=trigger,
            status=status,
            duration_s=time.monotonic() - started,
            error=error,
            dry_run=True,
            plan=details,
        )
        self.hub.publish(report)
        return report

    async def _plan_report(self, run_id: str) -> Plan:
        plan = await self.plan_users()
        self.hub.publish(
            PlanUpdated(
                run_id,
                {"create": plan.creates, "update": plan.updates, "leave": plan.leaves},
                plan.scanned,
                final=True,
                by_field=plan.by_field,
            )
        )
        return plan

    async def _role_plan_report(self, run_id: str) -> Any:
        role_diff = diff_roles(self.guild.roles(), await self.client.list_roles())
        self.hub.publish(PlanUpdated(run_id, role_diff.counts(), 0, final=True))
        return role_diff

    async def _dispatch(self) -> None:
        """The one sender loop: wait for a chunk's worth (or linger), a free slot, then send."""
        while True:
            await self.queue.wait_ready()
            await self.window.acquire()
            if not self._guild_readable.is_set():
                self.window.release()
                await self._guild_readable.wait()
                continue
            ops = self.queue.take(self.guild, self._stripping)
            if not ops:
                self.window.release()
                continue
            task = asyncio.get_running_loop().create_task(self._send(ops))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, ops: list[Op]) -> None:
        try:
            await self._sender.send(ops)
        except Exception:
            log.exception("sending a chunk of %d failed unexpectedly", len(ops))
        finally:
            for op in ops:
                if not op.settled:
                    op.settle("failed")  # a bug or shutdown: never leave a run waiting forever
            self.window.release()
            self.queue.done([op.user_id for op in ops])

    async def _on_retry(self, error: SiteAPIError, attempt: int, wait: float) -> None:
        chunk = current_chunk.get()
        if chunk is not None:
            chunk.retries += 1
        self.window.congested()
        for run_id in chunk.run_ids if chunk is not None else ("site",):
            self.hub.publish(Retrying(run_id, error.summary(), attempt, wait))
        if self._chained_retry_hook is not None:
            result = self._chained_retry_hook(error, attempt, wait)
            if result is not None:
                await result


class RoleStripIncomplete(RuntimeError):
    """Some holders kept the role, so deleting it would run the site's per-user cascade."""
