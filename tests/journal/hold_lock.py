"""A separate OS process that takes a journal lock, for the cross-process lock tests; and both
ends of the line protocol its kind of child speaks (tests/e2e/second_process.py too).

Usage: python -m tests.journal.hold_lock URL NAMESPACE NAME OWNER TTL
Prints READY, waits for a line on stdin, tries the lock and prints ACQUIRED or BUSY <holder>.
A holder keeps the lock (renewing it) until stdin closes, then releases it and prints RELEASED
(or LOST, when the lease was lost meanwhile).

The child reads stdin in its event loop, not in a thread, and on SIGUSR1 writes the stacks of
its tasks and threads to stderr and prints DUMPED. The test side (`LineChild`) drains stdout
and stderr as they come, so the child never blocks on a full pipe, and a child that says the
wrong thing, exits, or says nothing in time fails the test with its lines, that dump and
everything else it wrote to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import signal
import sys
from pathlib import Path
from typing import NoReturn

from guild_sync.journal import Lease, open_journal

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DUMP_WITHIN = 5.0
"""A bound for a failing child's dump of its stacks, only so a child that cannot dump ends."""
STDERR_SHOWN = 20_000
"""The end of a failing child's stderr kept in the assertion message, in characters."""


# -- the child's end -------------------------------------------------------------------------


def say(line: str) -> None:
    print(line, flush=True)


class Stdin:
    """The test's commands: one line says go, the end of stdin says stop.

    Read in the event loop (no executor thread to wait for) and registered with a dump of the
    child's stacks on SIGUSR1 that a failing test asks for.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    @classmethod
    async def open(cls) -> Stdin:
        faulthandler.enable()  # a SIGABRT still shows the threads when the loop is stuck
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, dump_stacks)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        return cls(reader)

    async def go(self) -> bool:
        """Whether the test said go (False: it closed stdin first)."""
        return bool(await self._reader.readline())

    async def closed(self) -> None:
        while await self._reader.read(65536):
            pass


def dump_stacks() -> None:
    """Where every task waits (the chain of awaits, innermost last), then every thread."""
    for task in asyncio.all_tasks():
        frames: list[str] = []
        awaited = task.get_coro()
        while awaited is not None and hasattr(awaited, "cr_frame"):
            if awaited.cr_frame is not None:
                code = awaited.cr_frame.f_code
                frames.append(f"{code.co_filename}:{awaited.cr_frame.f_lineno} {code.co_name}")
            awaited = awaited.cr_await
        print(f"task {task.get_name()}:", *frames, sep="\n  ", file=sys.stderr)
    sys.stderr.flush()
    faulthandler.dump_traceback(all_threads=True)
    say("DUMPED")


async def hold_until_stdin_closes(lease: Lease, stdin: Stdin) -> None:
    """Keep the lease (it renews itself) until the test closes stdin, then release it."""
    await stdin.closed()
    lost = lease.lost
    await lease.release()
    say("LOST" if lost else "RELEASED")


async def main(url: str, namespace: str, name: str, owner: str, ttl: float) -> None:
    stdin = await Stdin.open()
    async with await open_journal(url, namespace=namespace) as journal:
        say("READY")
        if not await stdin.go():
            return
        lease = await journal.acquire(name, owner=owner, ttl=ttl)
        if lease is None:
            holder = await journal.holder(name)
            say(f"BUSY {holder.owner if holder else '?'}")
            return
        say("ACQUIRED")
        await hold_until_stdin_closes(lease, stdin)


# -- the test's end --------------------------------------------------------------------------


class LineChild:
    """A child process driven line by line; its lines and its stderr are collected as they
    come, and any failure of the child raises with both."""

    def __init__(self, process: asyncio.subprocess.Process, within: float) -> None:
        self.process = process
        self.within = within
        self.lines: list[str] = []
        self.stderr = bytearray()
        self._changed = asyncio.Event()
        self._stdout = asyncio.create_task(self._read_lines())
        self._stderr = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(cls, module: str, *args: str, within: float) -> LineChild:
        """Runs `python -m module args...`; `within` bounds each wait for a line."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, *args, cwd=PROJECT_ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        child = cls(process, within)
        await child.line_starting("READY")
        return child

    async def _read_lines(self) -> None:
        assert self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                self.lines.append(line.decode(errors="replace").rstrip("\n"))
                self._changed.set()
        finally:  # at the end of stdout, or if reading failed: a waiter must not wait on
            self._changed.set()

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.read(65536):
            self.stderr += chunk

    def seen(self, *prefixes: str) -> str | None:
        return next((line for line in self.lines if line.startswith(prefixes)), None)

    async def line_starting(self, *prefixes: str, within: float | None = None) -> str:
        """The first line starting with one of `prefixes`, once the child has said it."""
        bound = self.within if within is None else within
        wanted = " or ".join(prefixes)
        line: str | None = None
        try:
            async with asyncio.timeout(bound):
                line = await self._line(prefixes)
        except TimeoutError:
            problem = f"no line starting with {wanted} within {bound:g} s"
        else:
            problem = f"stdout ended before a line starting with {wanted}"
        if line is None:  # failed outside the except block: the report is the whole error
            await self.fail(problem)
        return line

    async def _line(self, prefixes: tuple[str, ...]) -> str | None:
        """The line, or None when stdout ends without it."""
        while (line := self.seen(*prefixes)) is None and not self._stdout.done():
            self._changed.clear()
            await self._changed.wait()
        return line

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")

    async def finish(self, expected: str = "RELEASED") -> None:
        """Close stdin: the child releases its lease, says so and exits, all in time."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        line = await self.line_starting("RELEASED", "LOST")
        _, running = await asyncio.wait(
            [asyncio.ensure_future(self.process.wait()), self._stdout, self._stderr],
            timeout=self.within,
        )
        if running:
            await self.fail(f"still running {self.within:g} s after saying {line!r}")
        if line != expected or self.process.returncode != 0:
            await self.fail(f"ended with {line!r}, expected {expected!r} and exit status 0")

    async def fail(self, problem: str) -> NoReturn:
        """Stop the child, having it dump its stacks first if it runs, and raise with all of
        what it said."""
        if self.process.returncode is None:
            self._signal(signal.SIGUSR1)
            dumped = asyncio.create_task(self._line(("DUMPED",)))
            await asyncio.wait([dumped], timeout=DUMP_WITHIN)
            if not dumped.done():  # its event loop does not run: the threads, from faulthandler
                dumped.cancel()
                self._signal(signal.SIGABRT)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.process.wait(), DUMP_WITHIN)
        await self.kill()
        raise AssertionError(self.report(problem))

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # it has exited since
            self.process.send_signal(signum)

    def report(self, problem: str) -> str:
        stderr = self.stderr.decode(errors="replace")[-STDERR_SHOWN:]
        return (
            f"child {self.process.pid}: {problem} (exit status {self.process.returncode})\n"
            f"its lines: {self.lines}\nits stderr:\n{stderr}"
        )

    async def kill(self) -> None:
        """Kill the child if it runs, and wait for it and for the rest of its output."""
        if self.process.returncode is None:
            self._signal(signal.SIGKILL)
        await self.process.wait()
        await asyncio.wait([self._stdout, self._stderr], timeout=DUMP_WITHIN)


if __name__ == "__main__":
    url, namespace, name, owner, ttl = sys.argv[1:]
    asyncio.run(main(url, namespace, name, owner, float(ttl)))
