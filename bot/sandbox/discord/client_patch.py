"""Point an unmodified discord.py at the loopback Discord.

discord.py reads `Route.BASE` whenever it builds a route (REST and interaction webhooks alike) and
`DiscordWebSocket.DEFAULT_GATEWAY` for every IDENTIFY; resumes go to READY's
`resume_gateway_url`, which the emulator points back at itself. Both are class attributes, so
one process talks to one Discord at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route


def point_discord_py_at(api_url: str, gateway_url: str) -> Callable[[], None]:
    """Redirects discord.py's REST base and gateway; returns a function that restores them."""
    previous_base = Route.BASE
    previous_gateway = DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = api_url.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)

    def restore() -> None:
        Route.BASE = previous_base
        DiscordWebSocket.DEFAULT_GATEWAY = previous_gateway

    return restore
