"""Application commands: what a bot registers (bulk overwrite, global or per guild), who may use
each one, and the `data` of an APPLICATION_COMMAND interaction built from a test's invocation.

Discord checks a registration against rules the client library cannot see (names, lengths,
nesting, required before optional); a bot whose commands break them gets a 400 and no slash
commands at all, so the emulator checks the same rules and answers the same error shape.
Who sees a command: the guild's owner and administrators, a member allowed by the command's
permission overwrites (a guild's Server Settings → Integrations), or else a member holding
every permission of its `default_member_permissions`. Discord's client shows nobody else the
command, so nobody else can invoke it (`CommandHidden`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError
from .snowflake import SnowflakeFactory
from .state import ADMINISTRATOR, GuildState, JSONDict, MemberState, World

CHAT_INPUT = 1
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = range(3, 12)
MAX_COMMANDS = 100
MAX_OPTIONS = 25
MAX_CHOICES = 25
MISSING_ACCESS = 50001
INVALID_FORM_BODY = 50035
_NAME = re.compile(r"^[-_\w]{1,32}$")
_VALUE_TYPES: dict[int, tuple[type, ...]] = {
    STRING: (str,),
    INTEGER: (int,),
    BOOLEAN: (bool,),
    NUMBER: (int, float),
}


class CommandUnavailable(LookupError):
    """Invoked a command, subcommand or option the application has not registered (Discord's
    client would not offer it)."""


class CommandHidden(PermissionError):
    """The member may not use the command: Discord's client does not even show it to them."""


@dataclass(eq=False)
class RegisteredCommand:
    """One command as Discord stores it: its payload as the bot sent it, plus the fields
    Discord adds (id, application_id, version, guild_id)."""

    id: int
    application_id: int
    guild_id: int | None
    version: int
    payload: JSONDict

    @property
    def name(self) -> str:
        return str(self.payload["name"])

    @property
    def type(self) -> int:
        return int(self.payload.get("type") or CHAT_INPUT)

    @property
    def default_member_permissions(self) -> int | None:
        value = self.payload.get("default_member_permissions")
        return None if value is None else int(value)

    def to_json(self) -> JSONDict:
        body = {
            "name_localizations": None,
            "description_localizations": None,
            "nsfw": False,
            "integration_types": [0],
            "contexts": None,
            **self.payload,
            "id": str(self.id),
            "application_id": str(self.application_id),
            "version": str(self.version),
            "type": self.type,
            "default_member_permissions": self.payload.get("default_member_permissions"),
        }
        if self.guild_id is not None:
            body["guild_id"] = str(self.guild_id)
        return body


@dataclass
class CommandStats:
    overwrites: list[tuple[int | None, tuple[str, ...]]] = field(default_factory=list)
    """Every accepted bulk overwrite: the guild (None: global) and the names it left."""
    refused_overwrites: int = 0
    reads: int = 0
    invocations: int = 0


class ApplicationCommands:
    def __init__(self, world: World, snowflakes: SnowflakeFactory, on_change: Callable[[], None]):
        self._world = world
        self._snowflakes = snowflakes
        self._on_change = on_change
        self.registered: dict[int | None, dict[tuple[int, str], RegisteredCommand]] = {}
        """Per guild (None: global), the commands by (type, name)."""
        self.permission_overwrites: dict[tuple[int, str], dict[int, bool]] = {}
        """Per (guild, command name): role, user or @everyone (the guild's id) allowed or not."""
        self.without_scope: set[int] = set()
        """Guilds the application was added to without the applications.commands scope."""
        self.stats = CommandStats()

    # -- registration (REST) ----------------------------------------------------------------

    def _check_access(self, application_id: int, guild_id: int | None) -> None:
        if application_id != self._world.application_id:
            raise ApiError(403, MISSING_ACCESS, "Missing Access")
        if guild_id is not None and (
            guild_id not in self._world.guilds or guild_id in self.without_scope
        ):
            raise ApiError(403, MISSING_ACCESS, "Missing Access")

    def list(self, application_id: int, guild_id: int | None) -> list[JSONDict]:
        self._check_access(application_id, guild_id)
        self.stats.reads += 1
        return [c.to_json() for c in self.registered.get(guild_id, {}).values()]

    def bulk_overwrite(
        self, application_id: int, guild_id: int | None, body: Any
    ) -> list[JSONDict]:
        """PUT /applications/{app}/[guilds/{guild}/]commands: the list replaces every command of
        that scope. A command keeping its (type, name) keeps its id, as on Discord; its version
        changes only when its payload does."""
        try:
            self._check_access(application_id, guild_id)
            payloads = _validated_commands(body)
        except ApiError:
            self.stats.refused_overwrites += 1
            raise
        old = self.registered.get(guild_id, {})
        new: dict[tuple[int, str], RegisteredCommand] = {}
        for payload in payloads:
            key = (int(payload.get("type") or CHAT_INPUT), str(payload["name"]))
            kept = old.get(key)
            if kept is not None and kept.payload == payload:
                new[key] = kept
                continue
            command_id = kept.id if kept is not None else self._snowflakes.next()
            new[key] = RegisteredCommand(
                command_id, application_id, guild_id, self._snowflakes.next(), payload
            )
        self.registered[guild_id] = new
        self.stats.overwrites.append((guild_id, tuple(name for _, name in new)))
        self._on_change()
        return [c.to_json() for c in new.values()]

    def names(self, guild_id: int | None) -> set[str]:
        return {name for _, name in self.registered.get(guild_id, {})}

    # -- invocation -------------------------------------------------------------------------

    def find(self, guild_id: int, name: str) -> RegisteredCommand:
        """The guild's command of that name, else the global one (guild commands win)."""
        for scope in (guild_id, None):
            found = self.registered.get(scope, {}).get((CHAT_INPUT, name))
            if found is not None:
                return found
        raise CommandUnavailable(f"no command /{name} registered for guild {guild_id}")

    def may_use(self, guild: GuildState, member: MemberState, command: RegisteredCommand) -> bool:
        """Owner and administrators always; then the command's overwrites for the member, else
        for any of their roles (an allow wins), else for @everyone; else its default
        permissions (none set: everyone)."""
        permissions = guild.permissions_of(member)
        if member.id == guild.owner_id or permissions & ADMINISTRATOR:
            return True
        overwrites = self.permission_overwrites.get((guild.id, command.name), {})
        if member.id in overwrites:
            return overwrites[member.id]
        by_role = [overwrites[r] for r in member.roles if r in overwrites]
        if by_role:
            return any(by_role)
        if guild.id in overwrites:
            return overwrites[guild.id]
        wanted = command.default_member_permissions
        return wanted is None or permissions & wanted == wanted

    def interaction_data(
        self, guild: GuildState, command: RegisteredCommand, path: list[str], options: Mapping
    ) -> JSONDict:
        """The `data` of an APPLICATION_COMMAND interaction for `/name sub ... option:value`,
        checked against the registered command as Discord's client would before sending it:
        subcommands nest as options of type 1 (2 for a group), the values sit innermost, and
        an option list left empty is left out."""
        self.stats.invocations += 1
        level: list[JSONDict] = list(command.payload.get("options") or [])
        shown = f"/{command.name}"
        chain: list[JSONDict] = []
        for part in path:
            sub = next(
                (o for o in level if o["name"] == part and o["type"] in (1, 2)),
                None,
            )
            if sub is None:
                raise CommandUnavailable(f"{shown} has no subcommand {part!r}")
            shown += f" {part}"
            chain.append({"name": part, "type": sub["type"]})
            level = list(sub.get("options") or [])
        if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in level):
            raise CommandUnavailable(f"{shown} is a group: name one of its subcommands")
        declared = {o["name"]: o for o in level}
        values: list[JSONDict] = []
        for name, value in options.items():
            option = declared.get(name)
            if option is None:
                raise CommandUnavailable(f"{shown} has no option {name!r}")
            accepted = _VALUE_TYPES.get(option["type"])
            if accepted is None or not isinstance(value, accepted):
                raise TypeError(f"{shown} {name}: not a value of option type {option['type']}")
            if option["type"] in (INTEGER, NUMBER) and isinstance(value, bool):
                raise TypeError(f"{shown} {name}: a number, not a boolean")
            values.append({"name": name, "type": option["type"], "value": value})
        missing = [o["name"] for o in level if o.get("required") and o["name"] not in options]
        if missing:
            raise CommandUnavailable(f"{shown} needs the option(s) {missing}")
        inner = values
        for entry in reversed(chain):
            if inner:
                entry["options"] = inner
            inner = [entry]
        data: JSONDict = {"id": str(command.id), "name": command.name, "type": CHAT_INPUT}
        if inner:
            data["options"] = inner
        data["guild_id"] = str(guild.id)
        return data


# -- validation: Discord's rules for a registration ---------------------------------------------


def _error(where: str, code: str, message: str) -> ApiError:
    errors: JSONDict = {}
    node = errors
    parts = where.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = {"_errors": [{"code": code, "message": message}]}
    return ApiError(400, INVALID_FORM_BODY, "Invalid Form Body", errors)


def _validated_commands(body: Any) -> list[JSONDict]:
    if not isinstance(body, list):
        raise _error("_root", "MODEL_TYPE_CONVERT", "Only iterables may be used in a ListType")
    if len(body) > MAX_COMMANDS:
        raise _error("_root", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_COMMANDS} or fewer in length.")
    seen: set[tuple[int, str]] = set()
    commands = []
    for index, payload in enumerate(body):
        where = str(index)
        if not isinstance(payload, dict):
            raise _error(where, "MODEL_TYPE_CONVERT", "Only dictionaries may be used")
        kind = int(payload.get("type") or CHAT_INPUT)
        name = payload.get("name")
        _check_name(name, f"{where}.name", lowercase=kind == CHAT_INPUT)
        if (kind, name) in seen:
            raise _error(
                f"{where}.name",
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                "Application command names must be unique",
            )
        seen.add((kind, str(name)))
        if kind == CHAT_INPUT:
            _check_description(payload.get("description"), f"{where}.description")
            _check_options(payload.get("options") or [], f"{where}.options", depth=0)
        permissions = payload.get("default_member_permissions")
        if permissions is not None and not str(permissions).isdigit():
            raise _error(
                f"{where}.default_member_permissions", "NUMBER_TYPE_COERCE", "Value is not int."
            )
        stored = dict(payload)
        if permissions is not None:
            stored["default_member_permissions"] = str(permissions)  # Discord answers a string
        commands.append(stored)
    return commands


def _check_name(name: Any, where: str, *, lowercase: bool) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise _error(where, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
    if lowercase and name != name.lower():
        raise _error(where, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")


def _check_description(description: Any, where: str) -> None:
    if not isinstance(description, str) or not 1 <= len(description) <= 100:
        raise _error(where, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")


def _check_options(options: Any, where: str, *, depth: int) -> None:
    """Subcommand groups hold subcommands, subcommands hold plain options, a level holds
    either subcommands or plain options, and required options come before optional ones."""
    if not isinstance(options, list) or len(options) > MAX_OPTIONS:
        raise _error(where, "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_OPTIONS} or fewer in length.")
    names: set[str] = set()
    kinds = {int(o.get("type", 0)) for o in options if isinstance(o, dict)}
    nested = kinds & {SUB_COMMAND, SUB_COMMAND_GROUP}
    if nested and kinds - nested:
        raise _error(
            where,
            "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
            "Sub-command and sub-command group "
            "option types are mutually exclusive to all other types",
        )
    optional_seen = False
    for index, option in enumerate(options):
        at = f"{where}.{index}"
        if not isinstance(option, dict):
            raise _error(at, "MODEL_TYPE_CONVERT", "Only dictionaries may be used")
        kind = int(option.get("type", 0))
        if not SUB_COMMAND <= kind <= ATTACHMENT:
            raise _error(
                f"{at}.type", "ENUM_TYPE_COERCE", f"Value {kind!r} is not a valid enum value."
            )
        _check_name(option.get("name"), f"{at}.name", lowercase=True)
        if option["name"] in names:
            raise _error(
                f"{at}.name",
                "APPLICATION_COMMAND_OPTION_NAME_ALREADY_EXISTS",
                "Option name already exists",
            )
        names.add(option["name"])
        _check_description(option.get("description"), f"{at}.description")
        if (kind == SUB_COMMAND_GROUP and depth > 0) or (kind == SUB_COMMAND and depth > 1):
            raise _error(
                f"{at}.type", "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "Invalid nesting"
            )
        if kind == SUB_COMMAND_GROUP:
            children = option.get("options") or []
            if any(int(c.get("type", 0)) != SUB_COMMAND for c in children):
                raise _error(
                    f"{at}.options",
                    "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
                    "A group holds subcommands only",
                )
            _check_options(children, f"{at}.options", depth=depth + 1)
        elif kind == SUB_COMMAND:
            _check_options(option.get("options") or [], f"{at}.options", depth=2)
        else:
            if option.get("required"):
                if optional_seen:
                    raise _error(
                        f"{at}.required",
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
            else:
                optional_seen = True
            if len(option.get("choices") or []) > MAX_CHOICES:
                raise _error(
                    f"{at}.choices",
                    "BASE_TYPE_MAX_LENGTH",
                    f"Must be {MAX_CHOICES} or fewer in length.",
                )
