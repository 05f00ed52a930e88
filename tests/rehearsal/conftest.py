"""Fixtures: empty sandbox sites in their own processes, standing in for an operator's staging
site, and the command lines that rehearse against them as subprocesses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.site.process import SiteProcess, start_site_process
from guild_sync.site.client import SiteClient
from tests.rehearsal.support import TOKEN


@pytest.fixture
def start_site(tmp_path: Path) -> Iterator[Callable[[], SiteProcess]]:
    """Start a fresh, empty sandbox site process (a new database each call)."""
    started: list[SiteProcess] = []

    def start() -> SiteProcess:
        site = start_site_process(token=TOKEN, db=str(tmp_path / f"site{len(started)}.sqlite3"))
        started.append(site)
        return site

    yield start
    for site in started:
        site.stop()


@pytest.fixture
def site(start_site: Callable[[], SiteProcess]) -> SiteProcess:
    return start_site()


@pytest.fixture
async def client(site: SiteProcess) -> Any:
    async with SiteClient(site.url, TOKEN) as opened:
        yield opened
