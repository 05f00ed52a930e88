"""A loopback copy of the community website's users/roles API, backed by SQLite.

In-process: `async with SandboxSite() as site`; as a process: `bot.sandbox.site.process.
start_site_process()` or `python -m bot sandbox site` (not imported here: importing the command
line module from the package would trip `python -m bot.sandbox.site.cli`). See app.py for where
the sandbox differs from the real site.
"""

from bot.sandbox.site.faults import Fault, FaultConfig, Faults
from bot.sandbox.site.server import DEFAULT_TOKEN, SandboxSite
from bot.sandbox.site.stats import SiteStats
from bot.sandbox.site.store import SiteStore

__all__ = [
    "DEFAULT_TOKEN",
    "Fault",
    "FaultConfig",
    "Faults",
    "SandboxSite",
    "SiteStats",
    "SiteStore",
]
