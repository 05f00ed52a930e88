"""`python -m bot sandbox` end to end: real processes (bot, sandbox site), the loopback Discord."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(600)


def run_sandbox(*args: str, timeout: float = 300) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SYNC_", "API_KEYS"))}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "sandbox", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr[-3000:]
    summary = json.loads(lines[-1])
    assert result.returncode == (0 if summary["consistent"] else 1)
    return summary, result.stdout


def test_role_delete_at_twenty_thousand_members_ends_consistent():
    summary, out = run_sandbox("--members", "20000")
    assert summary["scenario"] == "role-delete"
    assert summary["consistent"] is True, out[-3000:]
    assert summary["mismatches"] == 0
    assert 0 < summary["max_items_per_request"] <= 1000
    assert summary["site_requests"] >= 20  # 19,998 holders stripped in chunks of 1,000
    assert summary["errors_reported"] == 0
    assert "✅ **Role deletion**" in out  # the terminal showed the log channel


def test_failing_site_pauses_automatic_runs_until_a_moderator_run_succeeds():
    summary, out = run_sandbox("--scenario", "failing-site", "--members", "500")
    assert summary["consistent"] is True, out[-3000:]
    assert summary["bot_starts"] == 4
    assert out.count("❌ **User sync** — users · start-up") == 3
    assert out.count("🛑 **Automatic syncs paused**") == 1
    assert "automatic users runs are enabled again" in out
