"""What pydis_core's extension walker finds in `guild_sync.exts`.

python-discord/bot loads every extension `walk_extensions` lists, each as a detached task, so
a listed module without `setup` fails with NoEntryPointError (only logged), and a helper module
listed by mistake is loaded as a second extension. The cog's other modules stay private (a
leading underscore) for that reason; these tests keep it that way.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import NoReturn

from pydis_core.utils._extensions import walk_extensions

import guild_sync.exts

EXTENSION = "guild_sync.exts.sync"


def _every_module() -> list[pkgutil.ModuleInfo]:
    """Every module and package under `guild_sync.exts`, private ones included."""

    def unimportable(name: str) -> NoReturn:
        raise ImportError(f"cannot import {name}", name=name)

    prefix = f"{guild_sync.exts.__name__}."
    return list(pkgutil.walk_packages(guild_sync.exts.__path__, prefix, onerror=unimportable))


def _private(name: str) -> bool:
    """pydis_core's rule: any part of the dotted name starting with an underscore."""
    return any(part.startswith("_") for part in name.split("."))


def test_pydis_walker_finds_exactly_the_sync_extension():
    assert walk_extensions(guild_sync.exts) == frozenset({EXTENSION})


def test_every_public_module_is_an_extension_with_an_async_setup():
    found = _every_module()
    public = [info.name for info in found if not _private(info.name)]
    assert EXTENSION in public
    assert any(_private(info.name) for info in found), "the private modules were walked too"
    for name in public:
        setup = getattr(importlib.import_module(name), "setup", None)
        assert inspect.isfunction(setup), f"{name} has no setup function"
        assert inspect.iscoroutinefunction(setup), f"{name}.setup is not async (discord.py 2)"
