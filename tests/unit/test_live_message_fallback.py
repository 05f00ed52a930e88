"""The reporter's summary lands whatever refuses the live message's last edit: it is posted as a
new message (still a final summary) that says why the live message was not updated."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import discord
import pytest

from guild_sync.engine.progress import RunFinished
from guild_sync.exts.sync._reporter import RunReporter, is_final_summary

TITLE = "User sync"


@dataclass
class Response:
    status: int
    reason: str = "refused"


def forbidden() -> discord.HTTPException:
    return discord.Forbidden(Response(403), {"message": "Missing Access", "code": 50001})


def not_found() -> discord.HTTPException:
    return discord.NotFound(Response(404), {"message": "Unknown Message", "code": 10008})


def old_message() -> discord.HTTPException:
    body = {"message": "Maximum number of edits to messages older than 1 hour", "code": 30046}
    return discord.HTTPException(Response(429), body)


def server_error() -> discord.HTTPException:
    return discord.DiscordServerError(Response(502), "<html>502 Bad Gateway</html>")


def rate_limited() -> Exception:
    return discord.RateLimited(3600.0)


@dataclass
class Message:
    refuse: Any
    edits: list[str] = field(default_factory=list)
    jump_url: str = "https://discord.com/channels/1/2/3"

    async def edit(self, *, content: str, **_: object) -> None:
        if self.refuse is not None:
            raise self.refuse()
        self.edits.append(content)


@dataclass
class Channel:
    refuse_edits: Any = None
    refuse_first_send: bool = False
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)

    async def send(self, content: str, **kwargs: Any) -> Message:
        if self.refuse_first_send and not self.sent:
            self.sent.append(("(refused)", kwargs))
            raise forbidden()
        self.sent.append((content, kwargs))
        message = Message(self.refuse_edits)
        self.messages.append(message)
        return message


async def _run(channel: Channel) -> RunReporter:
    reporter = RunReporter(channel, title=TITLE, headline="users", run_id="r1", min_edit_interval=0)
    await reporter.open()
    finished = RunFinished("r1", "users", "command", "finished", updated=3, duration_s=1.0)
    await asyncio.wait_for(reporter.close(finished), 5)
    return reporter


@pytest.mark.parametrize(
    ("refuse", "why"),
    [
        (not_found, "deleted"),
        (forbidden, "no longer lets the bot edit it"),
        (old_message, "older than an hour"),
        (server_error, "HTTP 502"),
        (rate_limited, "Discord asked to wait an hour"),  # a 429 of 3,600 s
    ],
)
async def test_a_refused_final_edit_posts_the_summary_as_a_new_message(refuse, why) -> None:
    channel = Channel(refuse_edits=refuse)
    await _run(channel)
    [(live, _), (posted, kwargs)] = channel.sent
    assert live.startswith("🔄 **User sync**")
    assert is_final_summary(posted, TITLE) and "3 updated" in posted
    assert "could not be updated" in posted and why in posted, posted
    assert posted.splitlines()[-1] == "-# run `r1`"
    assert kwargs["allowed_mentions"].to_dict()["parse"] == []
    assert len(posted) <= 2000


async def test_a_live_message_that_was_never_posted_still_gets_its_summary() -> None:
    channel = Channel(refuse_first_send=True)
    await _run(channel)
    [_, (posted, _)] = channel.sent
    assert is_final_summary(posted, TITLE) and "could not be posted" in posted, posted


async def test_an_edited_live_message_gets_no_second_summary() -> None:
    channel = Channel()
    await _run(channel)
    assert len(channel.sent) == 1, "no summary posted beside the edited live message"
    [message] = channel.messages
    assert is_final_summary(message.edits[-1], TITLE)
    assert "could not be" not in message.edits[-1]


@dataclass
class SlowMessage:
    """An edit that stays in flight until the test lets it finish, as discord.py's request does
    while it sleeps out a 429 (a global one blocks every request until that sleep ends)."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    finish: asyncio.Event = field(default_factory=asyncio.Event)
    edits: list[str] = field(default_factory=list)
    cancelled: int = 0
    jump_url: str = "https://discord.com/channels/1/2/3"

    async def edit(self, *, content: str, **_: object) -> None:
        if not self.edits:
            self.started.set()
            try:
                await self.finish.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        self.edits.append(content)


@dataclass
class SlowChannel:
    message: SlowMessage = field(default_factory=SlowMessage)

    async def send(self, content: str, **_: object) -> SlowMessage:
        return self.message


async def test_closing_waits_for_a_live_edit_in_flight_instead_of_cancelling_it() -> None:
    channel = SlowChannel()
    reporter = RunReporter(channel, title=TITLE, headline="users", run_id="r1", min_edit_interval=0)
    await reporter.open()
    reporter._dirty.set()  # progress to show: the live edit starts and stays in flight
    await channel.message.started.wait()
    finished = RunFinished("r1", "users", "command", "finished", updated=3, duration_s=1.0)
    closing = asyncio.create_task(reporter.close(finished))
    assert reporter._editor is not None
    await asyncio.wait([reporter._editor])  # close() has stopped the edit loop
    channel.message.finish.set()
    await asyncio.wait_for(closing, 5)
    assert channel.message.cancelled == 0, "close() cancelled a request discord.py was serving"
    [progress, final] = channel.message.edits
    assert progress.startswith("🔄") and is_final_summary(final, TITLE)
