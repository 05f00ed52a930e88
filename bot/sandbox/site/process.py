"""The sandbox site in a child process, for runs that measure its memory or kill and restart it.

with start_site_process(db="/tmp/site.db") as site:
    ... site.url, site.pid ...
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from bot.sandbox.site.cli import READY_PREFIX, cost_arguments, fault_arguments
from bot.sandbox.site.cost import CostConfig
from bot.sandbox.site.faults import FaultConfig
from bot.sandbox.site.server import DEFAULT_TOKEN

_PROJECT_ROOT = Path(__file__).resolve().parents[3]


class SiteProcess:
    """A running sandbox site process; `stop()` sends SIGTERM and waits for a clean exit."""

    def __init__(
        self, process: subprocess.Popen[bytes], url: str, cost: CostConfig | None = None
    ) -> None:
        self.process = process
        self.url = url
        self.cost = cost or CostConfig()
        """The cost model it was started with, so a restart can start it the same way."""

    def __repr__(self) -> str:
        return f"SiteProcess(pid={self.pid}, url={self.url!r})"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> int:
        """Stop the site (SIGTERM, then SIGKILL after `timeout`); return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def kill(self) -> None:
        """Kill the site without letting it clean up, as a crash would."""
        self.process.kill()
        self.process.wait()

    def __enter__(self) -> SiteProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_site_process(
    *,
    token: str = DEFAULT_TOKEN,
    db: str | None = None,
    faults: FaultConfig | None = None,
    cost: CostConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout: float = 20.0,
) -> SiteProcess:
    """Start `python -m bot.sandbox.site.cli` and wait (at most `timeout`) until it listens.
    `cost` None starts it without a cost model (cost.py)."""
    command = [sys.executable, "-m", "bot.sandbox.site.cli", "--host", host, "--port", str(port)]
    command += ["--token", token]
    if db is not None:
        command += ["--db", db]
    if faults is not None:
        command += fault_arguments(faults)
    if cost is not None:
        command += cost_arguments(cost)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
    try:
        url = _read_ready_line(process, timeout)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return SiteProcess(process, url, cost)


def _read_ready_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the sandbox site did not start within {timeout} s")
            if not selector.select(remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                status = process.wait()
                raise RuntimeError(f"the sandbox site exited with status {status} before starting")
            buffer += chunk
    line = buffer.split(b"\n", 1)[0].decode()
    if not line.startswith(READY_PREFIX):
        raise RuntimeError(f"unexpected first line from the sandbox site: {line!r}")
    return line.removeprefix(READY_PREFIX)
