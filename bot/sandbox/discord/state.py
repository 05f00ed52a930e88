"""The emulated world: users, guilds with roles, channels and members, and every message version.

Objects know how to turn themselves into Discord's JSON. Members cache their serialised JSON
because chunking a 100,000 member guild would otherwise spend most of its time in json.dumps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .snowflake import iso_timestamp

JSONDict = dict[str, Any]

ADMINISTRATOR = 1 << 3
TEXT_CHANNEL = 0
LOADING_FLAG = 1 << 7
EPHEMERAL_FLAG = 1 << 6


def dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


_quote = json.encoder.encode_basestring  # type: ignore[attr-defined]  # C-accelerated


def _quote_or_null(text: str | None) -> str:
    return "null" if text is None else _quote(text)


@dataclass(slots=True, eq=False)
class UserState:
    id: int
    username: str
    global_name: str | None
    bot: bool = False

    def to_json(self) -> JSONDict:
        payload: JSONDict = {
            "id": str(self.id),
            "username": self.username,
            "global_name": self.global_name,
            "discriminator": "0",
            "avatar": None,
            "public_flags": 0,
        }
        if self.bot:
            payload["bot"] = True
        return payload


@dataclass(slots=True, eq=False)
class RoleState:
    id: int
    name: str
    colour: int = 0
    permissions: int = 0
    position: int = 0
    hoist: bool = False
    mentionable: bool = False
    managed: bool = False

    def to_json(self) -> JSONDict:
        return {
            "id": str(self.id),
            "name": self.name,
            "color": self.colour,
            "colors": {
                "primary_color": self.colour,
                "secondary_color": None,
                "tertiary_color": None,
            },
            "hoist": self.hoist,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }


@dataclass(slots=True, eq=False)
class MemberState:
    user: UserState
    roles: tuple[int, ...]
    nick: str | None
    joined_at: str
    _json: str | None = None

    @property
    def id(self) -> int:
        return self.user.id

    def invalidate(self) -> None:
        self._json = None

    def to_json(self) -> JSONDict:
        return {
            "user": self.user.to_json(),
            "nick": self.nick,
            "avatar": None,
            "roles": [str(role_id) for role_id in self.roles],
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }

    def json(self) -> str:
        """The member's JSON text (equal to dumps(to_json())), built by a template once per change
        and reused by every chunk request: json.dumps per member was most of a 100k chunking."""
        if self._json is None:
            user = self.user
            roles = ",".join([f'"{role_id}"' for role_id in self.roles])
            bot = ',"bot":true' if user.bot else ""
            self._json = (
                f'{{"user":{{"id":"{user.id}","username":{_quote(user.username)},'
                f'"global_name":{_quote_or_null(user.global_name)},"discriminator":"0",'
                f'"avatar":null,"public_flags":0{bot}}},'
                f'"nick":{_quote_or_null(self.nick)},"avatar":null,"roles":[{roles}],'
                f'"joined_at":"{self.joined_at}","premium_since":null,"deaf":false,'
                '"mute":false,"flags":0,"pending":false,"communication_disabled_until":null}'
            )
        return self._json


@dataclass(slots=True, eq=False)
class ChannelState:
    id: int
    guild_id: int
    name: str
    position: int = 0
    type: int = TEXT_CHANNEL

    def to_json(self) -> JSONDict:
        return {
            "id": str(self.id),
            "guild_id": str(self.guild_id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "parent_id": None,
            "topic": None,
            "nsfw": False,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "permission_overwrites": [],
        }


@dataclass(slots=True, frozen=True)
class MessageVersion:
    """What a message looked like after its creation or one edit."""

    at: datetime
    content: str
    embeds: tuple[JSONDict, ...]
    components: tuple[JSONDict, ...]
    flags: int
    files: tuple[tuple[str, bytes], ...] = ()
    """Attached files (name, content), as uploaded with this version."""


@dataclass(slots=True, eq=False)
class StoredMessage:
    id: int
    channel_id: int
    guild_id: int
    author: UserState
    versions: list[MessageVersion]
    message_reference: JSONDict | None = None
    allowed_mentions: JSONDict | None = None
    interaction_id: int | None = None
    webhook_id: int | None = None
    deleted_at: datetime | None = None
    mentioned: tuple[UserState, ...] = ()
    """Users its current content mentions (`<@id>`, `<@!id>`), as Discord lists in `mentions`."""

    @property
    def current(self) -> MessageVersion:
        return self.versions[-1]

    @property
    def content(self) -> str:
        return self.current.content

    @property
    def edits(self) -> int:
        return len(self.versions) - 1

    def custom_ids(self) -> set[str]:
        return set(_custom_ids(self.current.components))

    def to_json(self) -> JSONDict:
        current = self.current
        payload: JSONDict = {
            "id": str(self.id),
            "type": 19 if self.message_reference else 0,
            "channel_id": str(self.channel_id),
            "author": self.author.to_json(),
            "content": current.content,
            "timestamp": iso_timestamp(self.versions[0].at),
            "edited_timestamp": iso_timestamp(current.at) if self.edits else None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [user.to_json() for user in self.mentioned],
            "mention_roles": [],
            "attachments": [],
            "embeds": list(current.embeds),
            "components": list(current.components),
            "pinned": False,
            "flags": current.flags,
        }
        if self.message_reference is not None:
            payload["message_reference"] = self.message_reference
        if self.webhook_id is not None:
            payload["webhook_id"] = str(self.webhook_id)
            payload["application_id"] = str(self.webhook_id)
        return payload


def _custom_ids(components: Any) -> list[str]:
    found: list[str] = []
    for component in components or ():
        if "custom_id" in component:
            found.append(component["custom_id"])
        found.extend(_custom_ids(component.get("components")))
    return found


@dataclass(eq=False)
class GuildState:
    id: int
    name: str
    owner_id: int
    roles: dict[int, RoleState] = field(default_factory=dict)
    channels: dict[int, ChannelState] = field(default_factory=dict)
    members: dict[int, MemberState] = field(default_factory=dict)
    messages: dict[int, dict[int, StoredMessage]] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: iso_timestamp(datetime.now(UTC)))
    gateway_hidden: set[int] = field(default_factory=set)
    """Members the gateway never delivers (GUILD_CREATE, its member_count, member chunks) while
    REST still answers for them: a partial member cache the client cannot tell from a whole one
    (see LoopbackDiscord.hide_from_gateway)."""
    unavailable: bool = False
    """In an outage (or not yet delivered after READY): the gateway sends no GUILD_CREATE and
    no event of it, and answers no member request for it, until it is available again (see
    LoopbackDiscord.make_guild_unavailable). REST still answers for it."""

    def gateway_members(self) -> list[MemberState]:
        """The members the gateway delivers: all of them unless some are hidden."""
        if not self.gateway_hidden:
            return list(self.members.values())
        return [m for m in self.members.values() if m.id not in self.gateway_hidden]

    @property
    def everyone_role(self) -> RoleState:
        return self.roles[self.id]

    def permissions_of(self, member: MemberState) -> int:
        if member.id == self.owner_id:
            return ADMINISTRATOR
        permissions = self.everyone_role.permissions
        for role_id in member.roles:
            role = self.roles.get(role_id)
            if role is not None:
                permissions |= role.permissions
        return permissions

    def member_json_with_permissions(self, member: MemberState) -> JSONDict:
        payload = member.to_json()
        payload["permissions"] = str(self.permissions_of(member))
        return payload

    def to_create_json(self, *, large_threshold: int, bot_user_id: int) -> JSONDict:
        """GUILD_CREATE: small guilds carry every member, large ones only the bot (as Discord does
        without presences), leaving the rest to REQUEST_GUILD_MEMBERS."""
        delivered = self.gateway_members()
        large = len(delivered) > large_threshold
        if large:
            bot_member = self.members.get(bot_user_id)
            members = [bot_member.to_json()] if bot_member else []
        else:
            members = [member.to_json() for member in delivered]
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "owner_id": str(self.owner_id),
            "unavailable": False,
            "large": large,
            "member_count": len(delivered),
            "joined_at": self.created_at,
            "roles": [role.to_json() for role in self.roles.values()],
            "channels": [channel.to_json() for channel in self.channels.values()],
            "members": members,
            "threads": [],
            "presences": [],
            "voice_states": [],
            "emojis": [],
            "stickers": [],
            "features": [],
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "system_channel_flags": 0,
            "afk_timeout": 300,
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


@dataclass(eq=False)
class World:
    """Everything the REST routes and the gateway read: the application, its bot user, all users
    and guilds. The LoopbackDiscord object is the only writer."""

    token: str
    application_id: int
    application_name: str
    application_flags: int
    bot_user: UserState
    owner: UserState
    users: dict[int, UserState] = field(default_factory=dict)
    guilds: dict[int, GuildState] = field(default_factory=dict)
    channel_guilds: dict[int, int] = field(default_factory=dict)

    def find_channel(self, channel_id: int) -> tuple[GuildState, ChannelState] | None:
        guild_id = self.channel_guilds.get(channel_id)
        if guild_id is None:
            return None
        guild = self.guilds[guild_id]
        return guild, guild.channels[channel_id]

    def find_message(self, channel_id: int, message_id: int) -> StoredMessage | None:
        found = self.find_channel(channel_id)
        if found is None:
            return None
        guild, _ = found
        message = guild.messages.get(channel_id, {}).get(message_id)
        return None if message is None or message.deleted_at is not None else message
