"""The scenario registry, kept apart so scenario modules can import it without cycles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.sandbox.sandbox import Sandbox

Play = Callable[["Sandbox"], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    default_members: int
    play: Play
    seed_site: bool = True
    """Whether the site starts equal to the guild (False: the start-up sync fills it)."""


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    name: str, summary: str, *, default_members: int = 20_000, seed_site: bool = True
) -> Callable[[Play], Play]:
    def register(play: Play) -> Play:
        SCENARIOS[name] = Scenario(name, summary, default_members, play, seed_site)
        return play

    return register
