"""The sandbox site as its own process: ready line, SIGTERM, restart on the same database."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import pytest

from bot.sandbox.site import DEFAULT_TOKEN, FaultConfig
from bot.sandbox.site.cli import main
from bot.sandbox.site.process import start_site_process
from tests.sandbox_site.conftest import Api, user_json


async def test_process_serves_stops_on_sigterm_and_keeps_its_database(tmp_path: Path) -> None:
    db = str(tmp_path / "site.db")
    async with aiohttp.ClientSession() as session:
        with start_site_process(db=db) as site:
            assert site.url.startswith("http://127.0.0.1:")
            assert not site.url.endswith(":0/api")
            api = Api(session, site.url)
            assert (await api.call("POST", "bot/users", user_json(7))).status == 201
            site.process.send_signal(signal.SIGTERM)
            assert site.process.wait(10) == 0
            assert site.process.stdout is not None
            assert site.process.stdout.read() == b"", "only the ready line is printed"

        with start_site_process(db=db) as restarted:
            api = Api(session, restarted.url)
            assert (await api.ok("GET", "bot/users/7"))["name"] == "user7"
        assert restarted.process.returncode == 0


async def test_process_takes_token_and_faults_from_flags() -> None:
    async with aiohttp.ClientSession() as session:
        with start_site_process(token="other", faults=FaultConfig(reject_writes=True)) as site:
            api = Api(session, site.url)
            assert (await api.call("GET", "bot/users")).status == 401
            headers = {"Authorization": "Token other"}
            assert (await api.call("GET", "bot/users", headers=headers)).status == 200
            reply = await api.call("POST", "bot/users", user_json(1), headers=headers)
            assert (reply.status, reply.is_html) == (500, True)


def test_process_that_cannot_start_raises(tmp_path: Path) -> None:
    # The timeout only bounds a broken start: the process exits once Python has imported the
    # site, which on a loaded machine can take longer than a healthy start's usual second.
    with pytest.raises(RuntimeError, match="exited with status"):
        start_site_process(db=str(tmp_path / "missing-dir" / "site.db"), timeout=120)


def test_cli_rejects_impossible_fault_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--fault-500", "0.7", "--fault-drop", "0.7", "--token", DEFAULT_TOKEN])
    assert exit_info.value.code == 2
    assert "at most 1" in capsys.readouterr().err
