"""Interactions: a member clicks a button (type 3) or invokes a slash command (type 2), the bot
answers through the interaction callback and the interaction's webhook, and the emulator records
every answer.

Discord's two clocks are kept: the callback must come within 3 s of the interaction (later, it
is "Unknown interaction", 10062, and the member sees "The application did not respond"), and the
token of the interaction's webhook (follow-ups, @original) lives 15 minutes, after which every
call with it is "Unknown Webhook" (10015). Both read `InteractionClock`, which a test advances
instead of waiting.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .app_commands import ApplicationCommands, CommandHidden
from .errors import UNKNOWN_INTERACTION, UNKNOWN_MESSAGE, UNKNOWN_WEBHOOK, ApiError, unknown
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
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
TOKEN_LIFETIME_S = 15 * 60.0
"""How long an interaction's token (its webhook: follow-ups, @original) stays valid."""


class InteractionClock:
    """Monotonic seconds plus what a test has `advance`d: expires tokens without waiting."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self.offset = 0.0

    def __call__(self) -> float:
        return self._now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


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
    message_id: int | None
    """The clicked message (components); None for a slash command."""
    member_id: int
    custom_id: str | None
    """The clicked component's id; None for a slash command."""
    created: float
    """On the service's `InteractionClock`."""
    answered: asyncio.Future[CallbackRecord]
    original_message_id: int | None = None
    followup_message_ids: list[int] = field(default_factory=list)
    type: int = MESSAGE_COMPONENT
    command: str | None = None
    """A slash command's invocation as typed, `sync users` (None for components)."""
    late_callbacks: int = 0
    """Callbacks refused because they came after the 3 s deadline (10062)."""
    expired_token_calls: int = 0
    """Webhook calls (follow-ups, @original) refused because the token had expired (10015)."""

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
        commands: ApplicationCommands,
        clock: InteractionClock | None = None,
        token_lifetime_s: float = TOKEN_LIFETIME_S,
    ) -> None:
        self._world = world
        self._gateway = gateway
        self._messages = messages
        self._snowflakes = snowflakes
        self._deadline = callback_deadline
        self._on_change = on_change
        self._commands = commands
        self.clock = clock or InteractionClock()
        self.token_lifetime_s = token_lifetime_s
        self.records: dict[int, InteractionRecord] = {}
        self._by_token: dict[str, InteractionRecord] = {}

    def failed(self, record: InteractionRecord) -> bool:
        """Not answered within the deadline: Discord shows the member "The application did
        not respond" and refuses any later callback."""
        return record.callback is None and self.clock() - record.created > self._deadline

    def expired(self, record: InteractionRecord) -> bool:
        return self.clock() - record.created > self.token_lifetime_s

    def click(
        self, message: StoredMessage, member: MemberState, custom_id: str, component_type: int
    ) -> InteractionRecord:
        if custom_id not in message.custom_ids():
            raise ValueError(f"message {message.id} has no component {custom_id!r}")
        guild = self._world.guilds[message.guild_id]
        channel = guild.channels[message.channel_id]
        record = self._new_record(guild.id, channel.id, member.id, message.id, custom_id)
        data = {"custom_id": custom_id, "component_type": component_type}
        payload = self._payload(record, MESSAGE_COMPONENT, data)
        payload["message"] = message.to_json() | {"guild_id": str(guild.id)}
        self._gateway.dispatch("INTERACTION_CREATE", payload, intent=None)
        return record

    def invoke(
        self,
        channel_id: int,
        member: MemberState,
        invocation: str,
        options: Mapping[str, object],
    ) -> InteractionRecord:
        """A member runs `/invocation` (`sync users`: the command, then its subcommands) with
        these option values: INTERACTION_CREATE of type 2 with the command's registered id,
        its subcommand chain and values as `data.options`, and the member with its roles and
        permissions. Raises CommandUnavailable for what is not registered, CommandHidden when
        the member may not use it (Discord's client would not show it)."""
        found = self._world.find_channel(channel_id)
        if found is None:
            raise LookupError(f"no channel {channel_id}")
        guild, channel = found
        name, *path = invocation.removeprefix("/").split()
        command = self._commands.find(guild.id, name)
        if not self._commands.may_use(guild, member, command):
            raise CommandHidden(f"{member.user.username} cannot see /{name} in {guild.name}")
        data = self._commands.interaction_data(guild, command, path, options)
        record = self._new_record(guild.id, channel.id, member.id, None, None)
        record.type, record.command = APPLICATION_COMMAND, " ".join([name, *path])
        self._gateway.dispatch(
            "INTERACTION_CREATE", self._payload(record, APPLICATION_COMMAND, data), intent=None
        )
        return record

    def _new_record(
        self,
        guild_id: int,
        channel_id: int,
        member_id: int,
        message_id: int | None,
        custom_id: str | None,
    ) -> InteractionRecord:
        record = InteractionRecord(
            id=self._snowflakes.next(),
            token=secrets.token_urlsafe(32),
            guild_id=guild_id,
            channel_id=channel_id,
            message_id=message_id,
            member_id=member_id,
            custom_id=custom_id,
            created=self.clock(),
            answered=asyncio.get_running_loop().create_future(),
        )
        self.records[record.id] = record
        self._by_token[record.token] = record
        return record

    def _payload(self, record: InteractionRecord, kind: int, data: JSONDict) -> JSONDict:
        guild = self._world.guilds[record.guild_id]
        channel = guild.channels[record.channel_id]
        member = guild.members[record.member_id]
        return {
            "id": str(record.id),
            "application_id": str(self._world.application_id),
            "type": kind,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "guild_locale": "en-US",
            "channel_id": str(channel.id),
            "channel": channel.to_json(),
            "member": guild.member_json_with_permissions(member),
            "token": record.token,
            "version": 1,
            "app_permissions": str(guild.permissions_of(guild.members[self._world.bot_user.id])),
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }

    def respond(self, interaction_id: int, token: str, body: JSONDict) -> JSONDict:
        """Handles POST /interactions/{id}/{token}/callback and returns the with_response body."""
        record = self.records.get(interaction_id)
        if record is None or record.token != token:
            raise unknown("interaction", UNKNOWN_INTERACTION)
        if record.answered.done():
            raise ApiError(400, ALREADY_ACKNOWLEDGED, "Interaction has already been acknowledged.")
        if self.clock() - record.created > self._deadline:
            record.late_callbacks += 1
            self._on_change()
            raise unknown("interaction", UNKNOWN_INTERACTION)
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        message = self._apply(record, kind, data)
        record.answered.set_result(CallbackRecord(kind, data))
        self._on_change()
        response: JSONDict = {
            "interaction": {
                "id": str(record.id),
                "type": record.type,
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
        if kind in (UPDATE_MESSAGE, DEFERRED_UPDATE_MESSAGE) and record.type != MESSAGE_COMPONENT:
            # Only a component's interaction has a message of its own to update.
            raise ApiError(
                400, 50035, "Invalid Form Body", {"type": {"_errors": [{"code": "ENUM"}]}}
            )
        if kind == UPDATE_MESSAGE:
            return self._messages.edit(self._clicked_message(record), data)
        if kind in (DEFERRED_UPDATE_MESSAGE, MODAL):
            return None
        raise ApiError(400, 50035, "Invalid Form Body", {"type": {"_errors": [{"code": "ENUM"}]}})

    def _clicked_message(self, record: InteractionRecord) -> StoredMessage:
        message = None
        if record.message_id is not None:
            message = self._world.find_message(record.channel_id, record.message_id)
        if message is None:
            raise unknown("Message", UNKNOWN_MESSAGE)
        return message

    def by_webhook(self, application_id: int, token: str) -> InteractionRecord:
        """The interaction whose webhook this is, while its token lives (15 minutes)."""
        record = self._by_token.get(token)
        if record is None or application_id != self._world.application_id:
            raise unknown("Webhook", UNKNOWN_WEBHOOK)
        if self.expired(record):
            record.expired_token_calls += 1
            self._on_change()
            raise unknown("Webhook", UNKNOWN_WEBHOOK)
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
            raise unknown("Webhook", UNKNOWN_WEBHOOK)
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
