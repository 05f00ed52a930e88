"""One run's story in the log channel: a start message edited live, its summary, every error.

The live message is edited at most once every `min_edit_interval` seconds (Discord allows five
message edits per five seconds per channel, and moderators read it, not a ticker), the first
time FIRST_EDIT_S after it is posted, so the run's first numbers do not wait a whole interval
behind "Comparing the guild with the site…". discord.py
itself waits out any 429 Discord still answers. Errors are posted as their own messages so they
stay visible after the live message has moved on.

The summary always lands: when the live message cannot take it (never posted, deleted, over an
hour old and refused by Discord's limit on such edits, or edits failing after discord.py's
retries), it is posted as a new message that says why. A lasting refusal (404, 403, 30046) also
stops the live edits, which would only add invalid requests.
"""

from __future__ import annotations

import asyncio
import logging
import time

import discord

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
)
from guild_sync.engine.roles import RoleDiff
from guild_sync.exts.sync._messages import (
    count,
    field_counts,
    fit,
    id_list,
    literal,
    progress_bar,
    site_message,
)
from guild_sync.exts.sync._rejections import (
    EDIT_ERRORS,
    EditedMessage,
    Rejections,
    with_note,
)
from guild_sync.exts.sync._tracing import ErrorTracker
from guild_sync.times import duration, eta

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
OUTAGE_NOTE_S = 2.0
"""A stretch of retries without a written chunk at least this long is named in the run's
message as one outage (a restarting site), instead of one error per chunk that rode it out."""
FIRST_EDIT_S = 1.0
"""The first edit's delay after the post (the interval's, when that is shorter). A second in,
a run has read its first pages and written its first chunks, and the post and one edit are two
of Discord's five requests per five seconds. A whole interval first showed a 23 s role deletion
in four edits (at 5, 10, 15 and 20 s, the first with 9% already done) instead of five."""


class RunReporter(EditedMessage):
    def __init__(
        self,
        channel: discord.abc.Messageable,
        *,
        title: str,
        headline: str,
        run_id: str,
        min_edit_interval: float = 5.0,
        track_error: ErrorTracker | None = None,
        prefix: str = "!",
    ) -> None:
        self.channel = channel
        self.title = title
        self.prefix = prefix
        """The bot's command prefix, for the commands a message asks moderators to run."""
        self.headline = headline
        self.run_id = run_id
        self.min_edit_interval = min_edit_interval
        self.track_error = track_error
        self.rejections = Rejections(
            channel,
            title=title,
            run_id=run_id,
            min_edit_interval=min_edit_interval,
            track_error=track_error,
        )
        self.meter = RateMeter()
        self.message: discord.Message | None = None
        self.chunks_ok = 0
        self.chunks_failed = 0
        self.items_settled = 0
        """Items of every answered chunk, written or not (the meter counts whole good chunks)."""
        self.retries = 0
        self.outages: list[float] = []
        """Seconds of each outage the run rode out (retries until a chunk was written)."""
        self._failing_since: float | None = None
        self.errors_reported = 0
        self.last_error: str | None = None
        self.scanning = True
        self.engine_report: RunFinished | None = None
        """The engine's own end of the run; a cancelled run's caller only knows it stopped."""
        self.by_field: dict[str, int] = {}
        """Per field, the users the run writes it for, as far as its pass has read the site."""
        self.fields_read = 0
        self._last_edit = 0.0
        self._dirty = asyncio.Event()
        self._editor: asyncio.Task[None] | None = None
        self._in_flight: asyncio.Future[bool] | None = None
        """The live edit being sent, which closing waits for instead of cancelling: cancelled
        while discord.py sleeps out a global 429, it would leave every later request waiting."""
        self._not_posted: str | None = None
        """Why the live message could not be posted, if it could not."""
        self._lost: str | None = None
        """Why the live message can no longer be edited (set by a lasting failure)."""
        self._last_failure: str | None = None
        self.final_text: str | None = None
        """The summary as `close` showed it (for a slash command's answer, `_slash.py`)."""

    @property
    def jump_url(self) -> str | None:
        return self.message.jump_url if self.message else None

    async def open(self) -> discord.Message | None:
        """Post the live message; a log channel that refuses it does not stop the run."""
        try:
            self.message = await self.channel.send(fit(self.render()), allowed_mentions=NO_PINGS)
        except EDIT_ERRORS as error:
            status = getattr(error, "status", 429)
            self._not_posted = f"Discord answered HTTP {status}"
            log.warning("could not post the live message of run %s: %s", self.run_id, error)
        # As if edited (interval - FIRST_EDIT_S) ago: the first edit comes FIRST_EDIT_S in.
        self._last_edit = time.monotonic() - max(0.0, self.min_edit_interval - FIRST_EDIT_S)
        self._editor = asyncio.create_task(self._edit_loop(), name=f"sync-report-{self.run_id}")
        return self.message

    async def feed(self, event: ProgressEvent) -> None:
        """A progress subscriber: keep the numbers, post errors at once, edit the live message."""
        if event.run_id != self.run_id:
            return
        self.meter.feed(event)
        if isinstance(event, PlanUpdated) and event.by_field is not None:
            self.by_field, self.fields_read = event.by_field, event.scanned
        if isinstance(event, RunFinished):
            self.engine_report = event
        elif isinstance(event, PlanUpdated) and event.final:
            self.scanning = False
        elif isinstance(event, ChunkDone):
            self.items_settled += event.items
            if event.ok:
                self.chunks_ok += 1
                self._recovered()
            else:
                self.chunks_failed += 1
        elif isinstance(event, Retrying):
            self.retries += 1
            if self._failing_since is None:
                self._failing_since = time.monotonic()
        elif isinstance(event, BadRecords):
            await self.rejections.add(event)
        elif isinstance(event, ChunkFailed):
            self.last_error = event.error
            await self.error(
                f"{count(len(event.ids))} user(s) could not be written after every retry; "
                "the next sync tries them again.",
                ids=event.ids,
                detail=event.error,
            )
        elif isinstance(event, LeaversWithheld):
            await self.error(self._withheld(event), ids=event.still_members)
        self._dirty.set()

    def _withheld(self, event: LeaversWithheld) -> str:
        sample = (
            f"the {count(event.sampled)} users sampled from the {count(event.leaving)} it "
            "would mark as left"
        )
        if event.still_members:
            why = (
                f"{count(len(event.still_members))} of {sample} are still members of the guild "
                "on Discord, so the bot's member list is incomplete (a sync on it would mark "
                "every member it lacks as left)"
            )
        else:
            why = (
                f"{sample} could not be looked up on Discord ({site_message(event.error)}), so "
                "a partial member list could not be ruled out"
            )
        return (
            f"nobody was marked as left: {why}. Everything else was written. Run "
            f"`{self.prefix}sync users` again once the bot has the whole member list (a restart "
            "loads it again)."
        )

    def _recovered(self) -> None:
        if self._failing_since is not None:
            span = time.monotonic() - self._failing_since
            if span >= OUTAGE_NOTE_S:
                self.outages.append(span)
            self._failing_since = None

    def _outage_note(self) -> str | None:
        if self._failing_since is not None:
            span = time.monotonic() - self._failing_since
            if span >= OUTAGE_NOTE_S:
                return f"site failing for {duration(span)}, retrying"
        if not self.outages:
            return None
        if len(self.outages) == 1:
            return f"site failed for {duration(self.outages[0])}, then recovered"
        return (
            f"site failed {count(len(self.outages))} times (longest "
            f"{duration(max(self.outages))}), then recovered"
        )

    async def error(self, what: str, *, ids: tuple[int, ...] = (), detail: object = "") -> None:
        """Post one error as its own message (with the Sentry event id when Sentry is on)."""
        lines = [f"⚠️ **{self.title}**: {what}"]
        if detail:
            lines.append(f"Site said: {site_message(detail)}")
        if ids:
            lines.append(f"User ids: {id_list(ids)}")
        if self.track_error is not None:
            event_id = self.track_error(what, {"run_id": self.run_id})
            if event_id:
                lines.append(f"Sentry event: `{event_id}`")
        self.errors_reported += 1
        try:
            await self.channel.send(fit("\n".join(lines)), allowed_mentions=NO_PINGS)
        except discord.HTTPException:
            log.exception("could not post a sync error to the log channel: %s", what)

    def render(self, finished: RunFinished | None = None) -> str:
        lines = [f"🔄 **{self.title}** — {self.headline}"]
        if finished is not None:
            lines[0] = f"{_status_icon(finished)} **{self.title}** — {self.headline}"
            stripped = 0
            if finished.kind == "roles":  # a role sync's only user writes strip deleted roles
                stripped = max(0, self.items_settled - finished.failed - finished.skipped)
            lines.append(summary(finished, users_stripped=stripped))
            if finished.status == "interrupted" and finished.error:
                lines.append(f"Stopped because {literal(finished.error)}.")
        else:
            planned = self.meter.planned
            done = self.meter.done
            if planned is None and done:
                lines.append(
                    f"{count(done)} users written; still comparing the guild with the site…"
                )
            elif planned is None:
                lines.append("Comparing the guild with the site…")
            else:
                projected = self.meter.projected or 0
                estimated = projected > planned
                total = f"~{count(projected)}" if estimated else count(planned)
                line = f"{progress_bar(done, projected)} {count(done)} / {total} users"
                if estimated:
                    line += f" ({count(planned)} found so far)"
                lines.append(line)
                rate = self.meter.rate
                if rate:
                    eta_s = self.meter.eta_s
                    if self.scanning and not eta_s:
                        eta_s = None  # all found so far is written; the rest is not yet read
                    lines.append(f"{count(round(rate))} users/s · done {eta(eta_s)}")
        if self.by_field:
            lines.append(self._fields_line(finished is not None))
        notes = []
        if self.retries:
            notes.append(f"{count(self.retries)} retries")
        outage = self._outage_note()
        if outage is not None:
            notes.append(outage)
        if self.chunks_failed:
            notes.append(f"{count(self.chunks_failed)} failed requests")
        errors = self.errors_reported + bool(self.rejections.causes)
        if errors:
            notes.append(f"{count(errors)} errors reported below")
        if notes:
            lines.append(" · ".join(notes))
        lines.append(f"-# run `{self.run_id}`")
        return fit("\n".join(lines))

    def _fields_line(self, finished: bool) -> str:
        """The counts per field the destructive-diff guard shows an automatic run's moderator.

        A run writes while it reads the site (the diff is streamed), so the counts cannot come
        before its first write without a second pass over the site's users; they show as soon as
        its own pass finds them, and say so until it has read every page."""
        counts = field_counts(self.by_field, self.fields_read)
        if finished or not self.scanning:
            return f"Fields: {counts}"
        return f"Fields so far (counted as the site is read, written as found): {counts}"

    async def _edit_loop(self) -> None:
        while True:
            await self._dirty.wait()
            wait = self._last_edit + self.min_edit_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty.clear()
            self._in_flight = asyncio.ensure_future(self._edit(self.render()))
            await asyncio.shield(self._in_flight)

    async def _edit(self, text: str) -> bool:
        return await self._edit_message("live message", text)

    async def _post_summary(self, text: str) -> None:
        """The summary as a new message, when the live message could not take it."""
        if self.message is None:
            note = (
                f"The run's live message could not be posted ({self._not_posted}), so its "
                "summary is posted here."
                if self._not_posted
                else None
            )
        else:
            why = self._lost or self._last_failure or "Discord refused the edit"
            note = f"The live message above could not be updated ({why}), so the summary is here."
        try:
            await self.channel.send(
                with_note(text, note) if note else text, allowed_mentions=NO_PINGS
            )
        except EDIT_ERRORS:
            log.exception("could not post the summary of run %s", self.run_id)

    async def close(self, finished: RunFinished) -> None:
        """Stop live edits and show the summary (still no sooner than the edit interval)."""
        if finished.status == "cancelled" and self.engine_report is not None:
            finished = self.engine_report  # what was written before the stop, not a blank report
        if self._editor is not None:
            self._editor.cancel()
            await asyncio.wait([self._editor])
        if self._in_flight is not None:
            await asyncio.wait([self._in_flight])
        # Errors first: once the summary shows, the run's story is complete (is_final_summary).
        await self.rejections.close()
        if finished.error and finished.status in ("failed", "partial"):
            await self.error(f"the run ended {finished.status}.", detail=finished.error)
        text = self.final_text = self.render(finished)
        if self.message is not None and self._lost is None:
            wait = self._last_edit + self.min_edit_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if await self._edit(text):
                return
        await self._post_summary(text)


STATUS_ICONS = {
    "finished": "✅",
    "partial": "⚠️",
    "cancelled": "⏹️",
    "interrupted": "⏹️",  # stopped by the cog itself, e.g. when its lease was lost (runs.py)
    "failed": "❌",
}


def _status_icon(finished: RunFinished) -> str:
    return STATUS_ICONS.get(finished.status, STATUS_ICONS["failed"])


def is_final_summary(text: str, title: str) -> bool:
    """Whether a log message is a run of `title` that has ended (its live message's last form),
    and not one of its error messages ("⚠️ **title**: …") or a run still going ("🔄")."""
    return text.startswith(tuple(f"{icon} **{title}** — " for icon in STATUS_ICONS.values()))


def summary(finished: RunFinished, *, users_stripped: int = 0) -> str:
    """The outcome in one line, in the terms of the run's kind; a dry run's numbers come from
    its plan. The engine counts a role sync's stripped holders as updated (members) or left
    (former members), so the reporter, which saw them written, passes `users_stripped` to tell
    them from the updated roles."""
    verb = "Would write" if finished.dry_run else "Wrote"
    if finished.kind == "roles":
        what = f"{verb} roles: {_role_counts(finished, users_stripped)}"
    elif finished.kind == "role-delete":
        what = f"Role deletion: {_role_deletion(finished)}"
    else:
        what = f"{verb}: {_user_counts(finished)}"
    text = f"{what} — {finished.status} in {duration(finished.duration_s)}"
    if finished.rate and not finished.dry_run and finished.kind == "users":
        text += f" ({count(round(finished.rate))} users/s)"
    return text


def _user_counts(finished: RunFinished) -> str:
    plan = finished.plan
    if isinstance(plan, Plan):
        created, updated, left, unchanged = plan.creates, plan.updates, plan.leaves, plan.unchanged
    else:
        created, updated = finished.created, finished.updated
        left, unchanged = finished.left, finished.unchanged
    withheld = (
        f" ({count(finished.leaves_withheld)} not: the member list is incomplete)"
        if finished.leaves_withheld
        else ""
    )
    return (
        f"{count(created)} created, {count(updated)} updated, {count(left)} marked left"
        f"{withheld}, {count(unchanged)} unchanged, {count(finished.failed)} failed"
    )


def _role_counts(finished: RunFinished, users_stripped: int) -> str:
    plan = finished.plan
    if isinstance(plan, RoleDiff):
        return (
            f"{count(len(plan.created))} created, {count(len(plan.updated))} updated, "
            f"{count(len(plan.deleted))} deleted"
        )
    text = (
        f"{count(finished.created)} created, "
        f"{count(max(0, finished.updated + finished.left - users_stripped))} updated, "
        f"{count(finished.deleted_roles)} deleted"
    )
    if users_stripped:
        text += f" (first removed from {count(users_stripped)} users)"
    if finished.failed:
        text += f", {count(finished.failed)} users failed"
    return text


def _role_deletion(finished: RunFinished) -> str:
    outcome = "then deleted it" if finished.deleted_roles else "the role was not deleted"
    text = f"removed the role from {count(finished.updated + finished.left)} users, {outcome}"
    if finished.failed:
        text += f"; {count(finished.failed)} users failed"
    return text
