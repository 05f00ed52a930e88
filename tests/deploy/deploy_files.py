"""Readers for the deployment files, small enough to check by eye.

No Docker engine runs where the tests run, so the tests check the files the way Docker and
Compose read them: Dockerfile instructions with their line continuations, Compose memory sizes,
`${VAR}` interpolation, `.dockerignore` patterns and `.env` comments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Compose's byte units (compose-spec "Specifying byte values"): b, k, m, g, optionally with "b".
_BYTE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_BYTE_VALUE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)b?\s*$", re.IGNORECASE)

# `${NAME}`, `${NAME:-default}`, `${NAME:?error}`, `$NAME`; `$$` is a literal dollar.
_INTERPOLATION = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
_ENV_ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")


def byte_size(value: str | int) -> int:
    """A Compose memory value ("1G", "512m", "256MB", 1048576) in bytes."""
    if isinstance(value, int):
        return value
    match = _BYTE_VALUE.match(str(value))
    if not match:
        raise ValueError(f"not a byte value: {value!r}")
    number, unit = match.groups()
    return int(float(number) * _BYTE_UNITS[unit.lower()])


def compose_variables(text: str) -> set[str]:
    """Names docker compose interpolates from the shell or `.env` when it reads this file."""
    lines = (line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return {a or b for a, b in _INTERPOLATION.findall("\n".join(lines))}


_BRACED = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:]?[-?+][^}]*)?\}")


def interpolate(value: str, variables: dict[str, str]) -> str:
    """A Compose value with its `${NAME...}` references replaced, as Compose does before use."""
    return _BRACED.sub(lambda match: variables[match.group(1)], value)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str] | None:
        """The JSON array of CMD/ENTRYPOINT/VOLUME, or None for the shell form."""
        try:
            value = json.loads(self.arguments)
        except ValueError:
            return None
        return value if isinstance(value, list) else None


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions in order, continuation lines joined, comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
    return instructions


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: `*` and `?` stay inside one path segment, `**` crosses them."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether Docker leaves `path` out of the build context; the last matching pattern wins.

    A pattern that matches a directory matches everything under it, as in Docker.
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _ignore_regex(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def dockerignore_patterns(text: str) -> list[str]:
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]


@dataclass(frozen=True)
class EnvEntry:
    name: str
    value_text: str
    comment_above: str | None  # the comment line directly above, without "# "
    line: int


def env_file_entries(text: str) -> list[EnvEntry]:
    """Assignments in a .env file with the comment line right above each one."""
    entries: list[EnvEntry] = []
    previous = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        match = _ENV_ASSIGNMENT.match(line)
        if match:
            comment = previous[1:].strip() if previous.startswith("#") else None
            entries.append(EnvEntry(match.group(1), line[match.end() :], comment, number))
        previous = line
    return entries
