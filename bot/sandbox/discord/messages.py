"""Message storage with Discord's validation, keeping every version of every message, and the
MESSAGE_CREATE/UPDATE/DELETE dispatches that follow each change."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import UNKNOWN_CHANNEL, ApiError, unknown
from .gateway import GUILD_MESSAGES, Gateway
from .snowflake import SnowflakeFactory
from .state import LOADING_FLAG, JSONDict, MessageVersion, StoredMessage, UserState, World

MAX_CONTENT = 2000
MAX_EMBEDS = 10
EMPTY_MESSAGE = 50006
INVALID_FORM_BODY = 50035
EDIT_OTHERS_MESSAGE = 50005


USER_MENTION = re.compile(r"<@!?(\d+)>")

UPLOADED_FILES = "_uploaded_files"
"""Where the REST layer puts a multipart request's files in the body: (name, content) pairs."""


@dataclass
class MessageStats:
    created: int = 0
    created_by_bot: int = 0
    edits: int = 0
    deleted: int = 0


class MessageService:
    def __init__(
        self,
        world: World,
        gateway: Gateway,
        snowflakes: SnowflakeFactory,
        on_change: Callable[[], None],
    ) -> None:
        self._world = world
        self._gateway = gateway
        self._snowflakes = snowflakes
        self._on_change = on_change
        self.stats = MessageStats()
        self._created_at: dict[int, datetime] = {}
        """Creation times tests set (`backdate`), in place of the first version's."""

    def backdate(self, message: StoredMessage, age: timedelta) -> None:
        """From now on the message counts as `age` old for Discord's limits on old messages
        (its id and `timestamp` keep its real creation time)."""
        self._created_at[message.id] = datetime.now(UTC) - age

    def age_s(self, message: StoredMessage) -> float:
        created = self._created_at.get(message.id, message.versions[0].at)
        return (datetime.now(UTC) - created).total_seconds()

    def create(
        self,
        channel_id: int,
        author: UserState,
        body: JSONDict,
        *,
        interaction_id: int | None = None,
        webhook_id: int | None = None,
        allow_empty: bool = False,
    ) -> StoredMessage:
        """Stores a new message; `allow_empty` is for the "thinking" placeholder of a deferred
        interaction response, which Discord creates without content."""
        found = self._world.find_channel(channel_id)
        if found is None:
            raise unknown("Channel", UNKNOWN_CHANNEL)
        guild, _ = found
        content = _validated_content(body.get("content"))
        embeds = _validated_embeds(body.get("embeds"))
        components = tuple(body.get("components") or ())
        if not content and not embeds and not components and not allow_empty:
            raise ApiError(400, EMPTY_MESSAGE, "Cannot send an empty message")
        version = MessageVersion(
            at=datetime.now(UTC),
            content=content,
            embeds=embeds,
            components=components,
            flags=int(body.get("flags") or 0),
            files=tuple(body.get(UPLOADED_FILES, ())),
        )
        message = StoredMessage(
            id=self._snowflakes.next(),
            channel_id=channel_id,
            guild_id=guild.id,
            author=author,
            versions=[version],
            message_reference=body.get("message_reference"),
            allowed_mentions=body.get("allowed_mentions"),
            interaction_id=interaction_id,
            webhook_id=webhook_id,
            mentioned=self._mentioned(content),
        )
        guild.messages.setdefault(channel_id, {})[message.id] = message
        self.stats.created += 1
        if author is self._world.bot_user:
            self.stats.created_by_bot += 1
        self._dispatch("MESSAGE_CREATE", message)
        self._on_change()
        return message

    def edit(self, message: StoredMessage, body: JSONDict) -> StoredMessage:
        """Applies the fields the body carries; absent fields keep their value, as on Discord."""
        current = message.current
        content = _validated_content(body["content"]) if "content" in body else current.content
        embeds = _validated_embeds(body["embeds"]) if "embeds" in body else current.embeds
        components = tuple(body["components"] or ()) if "components" in body else current.components
        flags = int(body["flags"] or 0) if body.get("flags") is not None else current.flags
        flags &= ~LOADING_FLAG  # any edit ends a deferred response's "thinking" state
        if not content and not embeds and not components:
            raise ApiError(400, EMPTY_MESSAGE, "Cannot send an empty message")
        if "allowed_mentions" in body:
            message.allowed_mentions = body["allowed_mentions"]
        files = tuple(body[UPLOADED_FILES]) if UPLOADED_FILES in body else current.files
        message.versions.append(
            MessageVersion(datetime.now(UTC), content, embeds, components, flags, files)
        )
        message.mentioned = self._mentioned(content)
        self.stats.edits += 1
        self._dispatch("MESSAGE_UPDATE", message)
        self._on_change()
        return message

    def delete(self, message: StoredMessage) -> None:
        message.deleted_at = datetime.now(UTC)
        self.stats.deleted += 1
        payload = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "guild_id": str(message.guild_id),
        }
        self._gateway.dispatch("MESSAGE_DELETE", payload, intent=GUILD_MESSAGES)
        self._on_change()

    def _mentioned(self, content: str) -> tuple[UserState, ...]:
        users = self._world.users
        ids = dict.fromkeys(int(found) for found in USER_MENTION.findall(content))
        return tuple(users[user_id] for user_id in ids if user_id in users)

    def _dispatch(self, event: str, message: StoredMessage) -> None:
        payload = message.to_json() | {"guild_id": str(message.guild_id)}
        guild = self._world.guilds[message.guild_id]
        member = guild.members.get(message.author.id)
        if member is not None and message.webhook_id is None:
            member_json = member.to_json()
            del member_json["user"]
            payload["member"] = member_json
        redacted = None
        bot = self._world.bot_user
        if message.author is not bot and bot not in message.mentioned:
            # Without MESSAGE_CONTENT Discord empties other people's messages, except those
            # that mention the bot (and DMs, which the emulator has none of).
            redacted = payload | {"content": "", "embeds": [], "attachments": [], "components": []}
        self._gateway.dispatch(
            event, payload, intent=GUILD_MESSAGES, without_message_content=redacted
        )


def _validated_content(content: Any) -> str:
    if content is None:
        return ""
    text = str(content)
    if len(text) > MAX_CONTENT:
        raise ApiError(
            400,
            INVALID_FORM_BODY,
            "Invalid Form Body",
            {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}},
        )
    return text


def _validated_embeds(embeds: Any) -> tuple[JSONDict, ...]:
    embeds = tuple(embeds or ())
    if len(embeds) > MAX_EMBEDS:
        raise ApiError(
            400,
            INVALID_FORM_BODY,
            "Invalid Form Body",
            {"embeds": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}},
        )
    return embeds
