"""A Redis outage for one process only: a private redis-server and a TCP proxy that can be cut.

Two bot processes share one Redis; the outage that matters is the one only one of them sees (a
network partition, a restarting sidecar). So the test starts its own redis-server (the shared
one on 6379 serves other tests and must not be stopped), lets one process reach it through a
`RedisProxy` in the test's event loop and the other directly, and cuts the proxy:

- `cut("refused")`: as a stopped server looks, every connection is reset and new ones are
  refused (the listening socket is closed);
- `cut("silent")`: as a partition looks, connections stay open but nothing comes back, so a
  client waits for its own timeout.

`restore()` forwards again (the client reconnects as it would to a restarted server).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import redis

START_TIMEOUT_S = 10.0
Outage = Literal["refused", "silent"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A redis-server of the test's own, on a free port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not on PATH")
        for _ in range(5):  # the free port may be taken before the server binds it
            self.port = free_port()
            log = (self.workdir / f"redis-{self.port}.log").open("wb")
            self.process = subprocess.Popen(
                [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            log.close()
            if self._answers():
                return
            self.stop()
        raise RuntimeError(f"redis-server did not start; see {self.workdir}/redis-*.log")

    def _answers(self) -> bool:
        """Whether the server answers PING before START_TIMEOUT_S (or exits: port taken)."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    return bool(client.ping())
                except redis.ConnectionError:
                    time.sleep(0.02)  # polling a starting server's port: nothing to wait on
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class RedisProxy:
    """Forwards 127.0.0.1:`port` to a Redis server until cut; runs in the current event loop."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.outage: Outage | None = None
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self, outage: Outage = "refused") -> None:
        """From now on the client's commands fail (refused) or are never answered (silent)."""
        self.outage = outage
        if outage == "refused":
            await self._stop_listening()
            self._reset_all()

    async def restore(self) -> None:
        was, self.outage = self.outage, None
        if was == "silent":
            self._reset_all()  # as after a partition: the client notices and reconnects
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self._stop_listening()
        self._reset_all()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            if self.outage is None:
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    "127.0.0.1", self.target_port
                )
                self._writers.add(upstream_writer)
                back = self._pipe(upstream_reader, writer)
                await self._forward(reader, upstream_writer)
                back.cancel()
            else:
                await self._forward(reader, None)  # silent: read and drop
        except (ConnectionError, OSError):
            pass
        finally:
            for end in (writer, upstream_writer):
                if end is not None:
                    self._writers.discard(end)
                    end.transport.abort()

    def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> asyncio.Task:
        task = asyncio.create_task(self._forward(source, sink))
        self._pipes.add(task)
        task.add_done_callback(self._pipes.discard)
        return task

    async def _forward(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter | None
    ) -> None:
        try:
            while data := await source.read(65536):
                if sink is None or self.outage is not None:
                    continue  # a silent outage swallows both directions
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if sink is not None:
                sink.transport.abort()  # one end closed: close the other


@contextlib.asynccontextmanager
async def redis_with_proxy(workdir: Path) -> AsyncIterator[tuple[PrivateRedis, RedisProxy]]:
    server = PrivateRedis(workdir)
    server.start()
    proxy = RedisProxy(server.port)
    try:
        await proxy.start()
        yield server, proxy
    finally:
        await proxy.close()
        server.stop()
