"""Records the site refused for their content, told once per run and cause, not once per user.

A role the site lacks, held by 80,000 members, would otherwise mean thousands of log-channel
messages at Discord's pace of five per five seconds (holding the run's lock until they drain)
and as many Sentry events. Instead each run keeps one message, posted at the first rejection
and edited (at the live message's pace) as more arrive: the count per cause, the site's answer
once, the first ids. Each cause is one Sentry event, fingerprinted so repeats group together.
Every id goes to the bot's log, and when more were rejected than the message shows, the final
edit attaches them all as a file. When that edit cannot land (the message was deleted, is over an
hour old, or Discord keeps failing), the final count is posted as a new message instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from dataclasses import dataclass, field

import discord

from guild_sync.engine.progress import BadRecords
from guild_sync.exts.sync._messages import MESSAGE_LIMIT, count, fit, id_list, site_message
from guild_sync.exts.sync._tracing import ErrorTracker
from guild_sync.times import duration

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
CAUSES_SHOWN = 5
IDS_SHOWN = 25
IDS_FILE = "rejected-user-ids.txt"
MAX_OLD_MESSAGE_EDITS = 30046
"""Discord's code for "Maximum number of edits to messages older than 1 hour reached"."""
EDIT_ERRORS = (discord.HTTPException, discord.RateLimited)
"""What an edit of a log message may raise: discord.py raises RateLimited instead of waiting
when a 429 asks for longer than the client's `max_ratelimit_timeout`."""


@dataclass(frozen=True)
class EditFailure:
    why: str
    """Why the message could not be edited, in moderators' words (no text of Discord's)."""
    lasting: bool
    """Whether editing it again in this run cannot succeed (or only adds invalid requests,
    which count towards Discord's Cloudflare ban)."""


def edit_failure(error: Exception) -> EditFailure:
    if isinstance(error, discord.NotFound):
        return EditFailure("it was deleted", True)
    if isinstance(error, discord.Forbidden):
        return EditFailure("Discord no longer lets the bot edit it", True)
    if isinstance(error, discord.RateLimited):
        return EditFailure(f"Discord asked to wait {duration(error.retry_after)}", True)
    if isinstance(error, discord.HTTPException) and error.code == MAX_OLD_MESSAGE_EDITS:
        return EditFailure("it is older than an hour and Discord refuses more edits of it", True)
    if isinstance(error, discord.DiscordServerError):
        return EditFailure(f"Discord kept failing: HTTP {error.status}", False)
    status = error.status if isinstance(error, discord.HTTPException) else "?"
    return EditFailure(f"Discord answered HTTP {status}", False)


def with_note(text: str, note: str) -> str:
    """`text` with a `-# note` line before its last line (the run's id), within the limit."""
    body, _, last = text.rpartition("\n")
    if not body:
        body, last = last, ""
    tail = f"\n-# {note}" + (f"\n{last}" if last else "")
    return fit(body, MESSAGE_LIMIT - len(tail)) + tail


@dataclass
class Cause:
    answer: str
    """The site's answer for these records, as it sent it."""
    status: int
    ids: list[int] = field(default_factory=list)
    sentry_event: str | None = None


class EditedMessage:
    """A log message a run keeps editing (its live message, its rejected records), and what
    Discord's refusals taught: a lasting one (the message deleted, the channel gone) stops every
    later edit, a passing one is kept for the note that says why the final count was reposted.
    Its users set `message`, `run_id`, `_lost`, `_last_failure` and `_last_edit`."""

    message: discord.Message | None
    run_id: str
    _lost: str | None
    _last_failure: str | None
    _last_edit: float

    async def _edit_message(self, what: str, content: str, **extra: object) -> bool:
        """Whether the edit landed; `what` names the message in the warning."""
        if self.message is None or self._lost is not None:
            return False
        try:
            await self.message.edit(content=content, allowed_mentions=NO_PINGS, **extra)
            return True
        except EDIT_ERRORS as error:
            failure = edit_failure(error)
            self._last_failure = failure.why
            if failure.lasting:
                self._lost = failure.why
            log.warning(
                "could not edit the %s of run %s (%s): %s", what, self.run_id, failure.why, error
            )
            return False
        finally:
            self._last_edit = time.monotonic()


class Rejections(EditedMessage):
    def __init__(
        self,
        channel: discord.abc.Messageable,
        *,
        title: str,
        run_id: str,
        min_edit_interval: float,
        track_error: ErrorTracker | None = None,
    ) -> None:
        self.channel = channel
        self.title = title
        self.run_id = run_id
        self.min_edit_interval = min_edit_interval
        self.track_error = track_error
        self.causes: dict[str, Cause] = {}
        self.message: discord.Message | None = None
        self.posted_at: float | None = None
        self._last_edit = 0.0
        self._pending: asyncio.Task[None] | None = None
        self._in_flight: asyncio.Future[bool] | None = None
        """An edit being sent: closing waits for it rather than cancel discord.py's request."""
        self._lost: str | None = None
        """Why the message can no longer be edited (set by a lasting failure)."""
        self._last_failure: str | None = None

    @property
    def total(self) -> int:
        return sum(len(cause.ids) for cause in self.causes.values())

    async def add(self, event: BadRecords) -> None:
        log.warning(
            "run %s: the site rejected %d user(s) (HTTP %s: %s): %s",
            self.run_id,
            len(event.ids),
            event.status,
            " ".join(event.message.split()),
            ", ".join(map(str, event.ids)),
        )
        cause = self.causes.get(event.message)
        if cause is None:
            cause = self.causes[event.message] = Cause(event.message, event.status)
            cause.sentry_event = self._track(cause)
        cause.ids.extend(event.ids)
        if self.message is None:
            await self._post()
        elif self._pending is None or self._pending.done():
            wait = max(0.0, self._last_edit + self.min_edit_interval - time.monotonic())
            self._pending = asyncio.create_task(self._edit_after(wait))

    async def close(self) -> None:
        """The final edit: every cause counted, all ids attached when more than shown; posted
        as a new message when the first one could not be posted or edited."""
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pending
        if self._in_flight is not None:
            await asyncio.wait([self._in_flight])
        if not self.causes:
            return
        if self.message is not None and self._lost is None:
            wait = self._last_edit + self.min_edit_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            files = [self._ids_file()] if self._overflows() else []
            if await self._edit(attachments=files):
                return
        text = self.render()
        if self.message is not None:
            why = self._lost or self._last_failure or "Discord refused the edit"
            text = with_note(
                text, f"The message above could not be updated ({why}), so its final count is here."
            )
        files = {"files": [self._ids_file()]} if self._overflows() else {}
        try:
            await self.channel.send(text, allowed_mentions=NO_PINGS, **files)
        except EDIT_ERRORS:
            log.exception("could not post the rejected records of run %s", self.run_id)

    def render(self) -> str:
        total = self.total
        lines = [
            f"⚠️ **{self.title}**: the site rejected {count(total)} user(s); they were left "
            "out and the rest were sent. Sending them again cannot succeed until the records "
            "(or the site) change."
        ]
        causes = sorted(self.causes.values(), key=lambda cause: -len(cause.ids))
        for cause in causes[:CAUSES_SHOWN]:
            sentry = f" · Sentry event: `{cause.sentry_event}`" if cause.sentry_event else ""
            lines.append(
                f"**{count(len(cause.ids))}** × HTTP {cause.status}{sentry}\n"
                f"Site said: {site_message(cause.answer)}\n"
                f"User ids: {id_list(cause.ids, IDS_SHOWN)}"
            )
        if len(causes) > CAUSES_SHOWN:
            hidden = sum(len(cause.ids) for cause in causes[CAUSES_SHOWN:])
            lines.append(
                f"… and {count(len(causes) - CAUSES_SHOWN)} more causes ({count(hidden)} users)."
            )
        if self._overflows():
            lines.append(f"Every id is in the bot's log and, once the run ends, in {IDS_FILE}.")
        lines.append(f"-# run `{self.run_id}`")
        return fit("\n".join(lines))

    def _overflows(self) -> bool:
        causes = sorted(self.causes.values(), key=lambda cause: -len(cause.ids))
        return len(causes) > CAUSES_SHOWN or any(len(c.ids) > IDS_SHOWN for c in causes)

    def _ids_file(self) -> discord.File:
        lines = [
            f"{user_id}\tHTTP {cause.status}\t{' '.join(cause.answer.split())}"
            for cause in self.causes.values()
            for user_id in cause.ids
        ]
        data = io.BytesIO(("\n".join(lines) + "\n").encode())
        return discord.File(data, filename=IDS_FILE)

    def _track(self, cause: Cause) -> str | None:
        if self.track_error is None:
            return None
        return self.track_error(
            f"{self.title}: the site rejected users (HTTP {cause.status}): "
            f"{site_message(cause.answer)}",
            {"run_id": self.run_id},
            ["sync-rejected-records", str(cause.status), cause.answer],
        )

    async def _post(self) -> None:
        try:
            self.message = await self.channel.send(self.render(), allowed_mentions=NO_PINGS)
        except EDIT_ERRORS as error:  # the next rejection, or the run's end, posts it again
            log.warning("could not post the rejected records of run %s: %s", self.run_id, error)
        self.posted_at = self._last_edit = time.monotonic()

    async def _edit_after(self, wait: float) -> None:
        await asyncio.sleep(wait)
        self._in_flight = asyncio.ensure_future(self._edit())
        await asyncio.shield(self._in_flight)

    async def _edit(self, **extra: object) -> bool:
        return await self._edit_message("rejected records", self.render(), **extra)
