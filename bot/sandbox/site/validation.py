"""Field validation with the rules and messages of Django REST Framework, as the site applies them.

The bot's handling of a 400 (bisecting a chunk to isolate the bad items) is only tested honestly if
the sandbox rejects exactly what the site rejects, with the same bodies: "0042" and 4.0 are valid
integers, 4.5 is not, strings are trimmed before their length is checked, and so on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_BIGINT = 2**63 - 1
MAX_INT = 2**31 - 1
MIN_INT = -(2**31)

REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."

_TRAILING_ZERO_FRACTION = re.compile(r"\.0*\s*$")
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_INTEGER_STRING = 1000
_TRUE_STRINGS = frozenset(
    ["t", "T", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "1"]
)
_FALSE_STRINGS = frozenset(
    ["f", "F", "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "0"]
)

ErrorDetail = list[str] | dict[str, list[str]]


class FieldError(Exception):
    """One field's errors: a list of messages, or for a list field a dict of index -> messages."""

    def __init__(self, detail: ErrorDetail) -> None:
        super().__init__(detail)
        self.detail = detail


def integer(minimum: int | None, maximum: int | None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, str) and len(value) > _MAX_INTEGER_STRING:
            raise FieldError(["String value too large."])
        if type(value) is int:  # the common case, same result as the string round trip
            number = value
        else:
            try:
                number = int(_TRAILING_ZERO_FRACTION.sub("", str(value)))
            except (ValueError, TypeError):
                raise FieldError(["A valid integer is required."]) from None
        if maximum is not None and number > maximum:
            raise FieldError([f"Ensure this value is less than or equal to {maximum}."])
        if minimum is not None and number < minimum:
            raise FieldError([f"Ensure this value is greater than or equal to {minimum}."])
        return number

    return parse


def text(max_length: int, *, allow_blank: bool) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if str(value).strip() == "":
            if not allow_blank:
                raise FieldError(["This field may not be blank."])
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise FieldError(["Not a valid string."])
        result = str(value).strip()
        errors = []
        if len(result) > max_length:
            errors.append(f"Ensure this field has no more than {max_length} characters.")
        if "\x00" in result:
            errors.append("Null characters are not allowed.")
        surrogate = _SURROGATE.search(result)
        if surrogate is not None:
            errors.append(f"Surrogate characters are not allowed: U+{ord(surrogate[0]):X}.")
        if errors:
            raise FieldError(errors)
        return result

    return parse


def boolean(value: Any) -> bool:
    if isinstance(value, str):
        if value in _TRUE_STRINGS:
            return True
        if value in _FALSE_STRINGS:
            return False
    elif isinstance(value, int | float):  # True == 1 and 1.0 == 1, as in DRF's value sets
        if value == 1:
            return True
        if value == 0:
            return False
    raise FieldError(["Must be a valid boolean."])


def integer_list(minimum: int | None, maximum: int | None) -> Callable[[Any], list[int]]:
    parse_item = integer(minimum, maximum)

    def parse(value: Any) -> list[int]:
        if not isinstance(value, list):
            raise FieldError([f'Expected a list of items but got type "{type(value).__name__}".'])
        result: list[int] = []
        errors: dict[str, list[str]] = {}
        for index, item in enumerate(value):
            try:
                if item is None:
                    raise FieldError([NOT_NULL])
                result.append(parse_item(item))
            except FieldError as error:
                errors[str(index)] = error.detail  # type: ignore[assignment]
        if errors:
            raise FieldError(errors)
        return result

    return parse


@dataclass(frozen=True, slots=True)
class Field:
    parse: Callable[[Any], Any]
    required: bool = True


Schema = Mapping[str, Field]

USER_SCHEMA: Schema = {
    # No maximum: the site lets ids above 2**63-1 through validation and fails in the database.
    "id": Field(integer(0, None)),
    "name": Field(text(32, allow_blank=False)),
    "display_name": Field(text(32, allow_blank=True), required=False),
    "discriminator": Field(integer(0, 9999)),
    # No maximum either: an id of 2**63 or more is a role that does not exist (missing_roles).
    "roles": Field(integer_list(0, None), required=False),
    "in_guild": Field(boolean, required=False),
}
USER_DEFAULTS: Mapping[str, Any] = {"display_name": "", "in_guild": True}

ROLE_SCHEMA: Schema = {
    "id": Field(integer(0, MAX_BIGINT)),
    "name": Field(text(100, allow_blank=False)),
    "colour": Field(integer(0, MAX_INT)),
    "permissions": Field(integer(0, MAX_BIGINT)),
    "position": Field(integer(MIN_INT, MAX_INT)),
}


def validate_object(
    data: Any, schema: Schema, *, partial: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate one object: (values of the fields it sent, errors by field in schema order).

    Keys that are not in the schema are ignored, as the site ignores them.
    """
    if not isinstance(data, dict):
        message = f"Invalid data. Expected a dictionary, but got {type(data).__name__}."
        return {}, {"non_field_errors": [message]}
    values: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    for name, field in schema.items():
        if name not in data:
            if field.required and not partial:
                errors[name] = [REQUIRED]
            continue
        raw = data[name]
        if raw is None:
            errors[name] = [NOT_NULL]
            continue
        try:
            values[name] = field.parse(raw)
        except FieldError as error:
            errors[name] = error.detail
    return values, errors


def validate_item(
    item: Any, schema: Schema, *, partial: bool
) -> tuple[dict[str, Any], dict[str, Any] | list[str]]:
    """One item of a list body: as `validate_object`, except that `null` is the item's own
    error, a list of messages (DRF's ListSerializer runs each child field's null check)."""
    if item is None:
        return {}, [NOT_NULL]
    return validate_object(item, schema, partial=partial)


def missing_roles(role_ids: list[int], known: frozenset[int]) -> list[str]:
    """The site's message for each role id that is not in the role table: sorted by id,
    whatever the order in the request, each id once."""
    missing = sorted({r for r in role_ids if r not in known})
    return [f"Role with ID {role_id} does not exist" for role_id in missing]
