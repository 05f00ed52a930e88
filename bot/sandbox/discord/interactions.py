"""Component interactions: a member clicks a button, the bot answers through the interaction
callback and the interaction's webhook, and the emulator records every answer."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import UNKNOWN_INTERACTION, UNKNOWN_MESSAGE, ApiError, unknown
from .gateway import Gateway
from .messages import MessageService
from .snowflake import SnowflakeFactory
from .state import LOADING_FLAG, JSONDict, MemberState, StoredMessage, World

CHANNEL_MESSAGE_WITH_SOURCE = 4
DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
MODAL = 9
ALREADY_ACKNOWLEDGED = 40060
BUTTON = 2
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CallbackRecord:
    """The bot's answer to an interaction: the callback type and its data."""

    type: int
    data: JSONDict


@dataclass(eq=False)
class InteractionRecord:
    id: int
    token: str
    guild_id: int
    channel_id: int
    message_id: int
    member_id: int
    custom_id: str
    created: float
    answered: asyncio.Future[CallbackRecord]
    original_message_id: int | None = None
    followup_message_ids: list[int] = field(default_factory=list)

    @property
    def callback(self) -> CallbackRecord | None:
        return self.answered.result() if self.answered.done() else None

    async def wait_callback(self, within: float) -> CallbackRecord:
        return await asyncio.wait_for(asyncio.shield(self.answered), within)


class InteractionService:
    def __init__(
        self,
        world: World,
        gateway: Gateway,
        messages: MessageService,
        snowflakes: SnowflakeFactory,
        *,
        callback_deadline: float,
        on_change: Callable[[], None],
    ) -> None:
        self._world = world
        self._gateway = gateway
        self._messages = messages
        self._snowflakes = snowflakes
        self._deadline = callback_deadline
        self._on_change = on_change
        self.records: dict[int, InteractionRecord] = {}
        self._by_token: dict[str, InteractionRecord] = {}

    def click(
        self, message: StoredMessage, member: MemberState, custom_id: str, component_type: int
    ) -> InteractionRecord:
        if custom_id not in message.custom_ids():
            raise ValueError(f"message {message.id} has no component {custom_id!r}")
        guild = self._world.guilds[message.guild_id]
        channel = guild.channels[message.channel_id]
        record = InteractionRecord(
            id=self._snowflakes.next(),
            token=secrets.token_urlsafe(32),
            guild_id=guild.id,
            channel_id=channel.id,
            message_id=message.id,
            member_id=member.id,
            custom_id=custom_id,
            created=time.monotonic(),
            answered=asyncio.get_running_loop().create_future(),
        )
        self.records[record.id] = record
        self._by_token[record.token] = record
        payload = {
            "id": str(record.id),
            "application_id": str(self._world.application_id),
            "type": 3,
            "data": {"custom_id": custom_id, "component_type": component_type},
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "guild_locale": "en-US",
            "channel_id": str(channel.id),
            "channel": channel.to_json(),
            "member": guild.member_json_with_permissions(member),
            "token": record.token,
            "version": 1,
            "message": message.to_json() | {"guild_id": str(guild.id)},
            "app_permissions": str(guild.permissions_of(guild.members[self._world.bot_user.id])),
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        self._gateway.dispatch("INTERACTION_CREATE", payload, intent=None)
        return record

    def respond(self, interaction_id: int, token: str, body: JSONDict) -> JSONDict:
        """Handles POST /interactions/{id}/{token}/callback and returns the with_response body."""
        record = self.records.get(interaction_id)
        if record is None or record.token != token:
            raise unknown("interaction", UNKNOWN_INTERACTION)
        if record.answered.done():
            raise ApiError(400, ALREADY_ACKNOWLEDGED, "Interaction has already been acknowledged.")
        if time.monotonic() - record.created > self._deadline:
            raise unknown("interaction", UNKNOWN_INTERACTION)
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        message = self._apply(record, kind, data)
        record.answered.set_result(CallbackRecord(kind, data))
        self._on_change()
        response: JSONDict = {
            "interaction": {
                "id": str(record.id),
                "type": 3,
                "response_message_id": None if message is None else str(message.id),
                "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
                "response_message_ephemeral": bool(int(data.get("flags") or 0) & 64),
            }
        }
        if message is not None:
            response["resource"] = {"type": kind, "message": message.to_json()}
        return response

    def _apply(self, record: InteractionRecord, kind: int, data: JSONDict) -> StoredMessage | None:
        bot = self._world.bot_user
        if kind in (CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE):
            deferred = kind == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
            body = dict(data)
            if deferred:
                body = {"content": "", "flags": int(data.get("flags") or 0) | LOADING_FLAG}
            message = self._messages.create(
                record.channel_id,
                bot,
                body,
                interaction_id=record.id,
                webhook_id=self._world.application_id,
                allow_empty=deferred,
            )
            record.original_message_id = message.id
            return message
        if kind == UPDATE_MESSAGE:
            return self._messages.edit(self._clicked_message(record), data)
        if kind in (DEFERRED_UPDATE_MESSAGE, MODAL):
            return None
        raise ApiError(400, 50035, "Invalid Form Body", {"type": {"_errors": [{"code": "ENUM"}]}})

    def _clicked_message(self, record: InteractionRecord) -> StoredMessage:
        message = self._world.find_message(record.channel_id, record.message_id)
        if message is None:
            raise unknown("Message", UNKNOWN_MESSAGE)
        return message

    def by_webhook(self, application_id: int, token: str) -> InteractionRecord:
        record = self._by_token.get(token)
        if record is None or application_id != self._world.application_id:
            raise unknown("Webhook", 10015)
        return record

    def original_message(self, record: InteractionRecord) -> StoredMessage:
        """@original is the response message, or the clicked message after an update response."""
        if record.original_message_id is not None:
            message = self._world.find_message(record.channel_id, record.original_message_id)
            if message is None:
                raise unknown("Message", UNKNOWN_MESSAGE)
            return message
        if record.callback is None:
            raise unknown("Message", UNKNOWN_MESSAGE)
        return self._clicked_message(record)

    def followup(self, record: InteractionRecord, body: JSONDict) -> StoredMessage:
        """A followup message; the first one after a "thinking" defer replaces the loading
        message instead, as on Discord."""
        if record.callback is None:
            raise unknown("Webhook", 10015)
        if record.original_message_id is not None:
            original = self.original_message(record)
            if original.current.flags & LOADING_FLAG:
                return self._messages.edit(original, body)
        message = self._messages.create(
            record.channel_id,
            self._world.bot_user,
            body,
            interaction_id=record.id,
            webhook_id=self._world.application_id,
        )
        record.followup_message_ids.append(message.id)
        return message

    def interaction_message(self, record: InteractionRecord, message_id: int) -> StoredMessage:
        allowed = {record.original_message_id, *record.followup_message_ids}
        if message_id not in allowed:
            raise unknown("Message", UNKNOWN_MESSAGE)
        message = self._world.find_message(record.channel_id, message_id)
        if message is None:
            raise unknown("Message", UNKNOWN_MESSAGE)
        return message
