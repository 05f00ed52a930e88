"""The real bot as a child process, so scenarios can kill and restart it.

It is started exactly as an operator starts it: the bare command, which runs the real bot because
BOT_TOKEN is set (the sandbox demo runs only without one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")


class BotProcess:
    """A bot process with a settings environment of its own (no `.env`, no inherited secrets)."""

    def __init__(self, environ: dict[str, str], workdir: Path) -> None:
        self.environ = {k: v for k, v in os.environ.items() if k in _INHERITED}
        self.environ["PYTHONPATH"] = str(_PROJECT_ROOT)
        self.environ.update(environ)
        self.workdir = workdir
        self.log_path = workdir / "bot.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"--- bot process start {self.starts} ---\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            cwd=self.workdir,  # so no operator's .env is read
            env=self.environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up, as in a crash or an OOM kill."""
        if self.alive:
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def stop(self, timeout: float = 15.0) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_of_start(self, start: int) -> str:
        """What the process of the `start`-th start (1-based) has logged so far."""
        if not self.log_path.exists():
            return ""
        parts = self.log_path.read_text(errors="replace").split("--- bot process start ")
        return parts[start] if start < len(parts) else ""

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
