"""Record validation and choosing a backend by URL."""

from __future__ import annotations

import json
import socket
from datetime import datetime
from pathlib import Path

import pytest

from guild_sync.journal import JournalUnavailable, RecordError, Run, open_journal


def test_a_run_survives_its_json_form() -> None:
    run = Run.begin("role-delete", "event", detail={"role_id": 42, "holders": 80_000})
    assert run.automatic
    assert Run.loads(run.dumps()) == run


@pytest.mark.parametrize(
    ("field", "value", "complaint"),
    [
        ("automatic", 1, "automatic"),
        ("done", True, "done"),
        ("failed", -1, "negative"),
        ("trigger", "cron", "unknown trigger"),
        ("started_at", "2026-01-01T00:00:00", "time zone"),
        ("finished_at", "yesterday", "not an ISO time"),
        ("detail", [], "detail"),
    ],
)
def test_stored_runs_with_a_bad_field_are_refused(
    field: str, value: object, complaint: str
) -> None:
    data = Run.begin("users", "startup").to_json() | {field: value}
    with pytest.raises(RecordError, match=complaint):
        Run.loads(json.dumps(data))


def test_runs_that_could_not_be_read_back_are_not_stored() -> None:
    with pytest.raises(TypeError):
        Run.begin("users", "startup", detail={"when": datetime.now()}).dumps()
    with pytest.raises(ValueError, match="detail"):
        Run.begin("users", "startup", detail={"ids": list(range(2_000))}).dumps()


def test_long_errors_are_clipped() -> None:
    run = Run.begin("users", "startup").finished("failed", last_error="x" * 10_000)
    assert run.last_error is not None and len(run.last_error) <= 2_000


async def test_an_unsupported_scheme_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unsupported journal URL scheme 'postgres'"):
        await open_journal("postgres://user:hunter2@db/bot")
    with pytest.raises(ValueError, match="sqlite:///path"):
        await open_journal("sqlite://")


async def test_sqlite_creates_the_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "journal.sqlite3"
    async with await open_journal(f"sqlite:///{path}") as journal:
        await journal.start_run(Run.begin("roles", "startup"))
    assert path.is_file()


async def test_an_unreachable_redis_fails_at_open_without_showing_the_password() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(JournalUnavailable) as failure:
        await open_journal(f"redis://:hunter2@127.0.0.1:{port}/0")
    assert "hunter2" not in str(failure.value)
    assert str(port) in str(failure.value)
