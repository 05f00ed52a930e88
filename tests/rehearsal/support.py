"""Running the operator's commands as subprocesses and reading their JSON summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TOKEN = "rehearsal-staging-token"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def run_command(
    args: list[str], cwd: Path, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """A command as an operator types it, from a directory with no `.env`."""
    env = {k: v for k, v in os.environ.items() if k not in ("API_KEYS_SITE_API", "BOT_TOKEN")}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def last_json(stdout: str) -> dict[str, Any]:
    lines = stdout.strip().splitlines()
    assert lines, "no output"
    return json.loads(lines[-1])
