"""Sandbox scenarios: one module each, registered by name with `@scenario`.

A scenario gets a `Sandbox` whose bot has finished its start-up sync, does what moderators or
members would do on Discord, and returns once the bot has finished reacting; the runner then
checks the site against the guild. Adding one is adding a module here and importing it below.
"""

from bot.sandbox.scenarios.registry import SCENARIOS, Scenario, scenario

# Each import registers its scenarios.
from bot.sandbox.scenarios import (  # noqa: F401  # isort: skip
    discord_rest,
    gateway_faults,
    guard,
    hostile,
    members,
    outage,
    restarts,
    role_delete,
    site_faults,
    storms,
    upstream,
)

__all__ = ["SCENARIOS", "Scenario", "scenario"]
