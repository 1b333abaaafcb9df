"""Ports and TCP proxies: a free port, a proxy a test can cut and restore (a service that is
unreachable, then back), and a proxy that holds back what the server sends."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

__all__ = ["GatedProxy", "Proxy", "free_port"]


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proxy:
    """Forwards TCP to ``target_host:target_port``; :meth:`cut` drops it all."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


class GatedProxy:
    """Forwards TCP both ways; after ``upstream_limit`` bytes from the client, stops forwarding
    what the broker sends (PUBACKs included)."""

    def __init__(self, target_port: int, upstream_limit: int) -> None:
        self.target_port = target_port
        self.upstream_limit = upstream_limit
        self.upstream_bytes = 0
        self.held_bytes = 0
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    def drop_all(self) -> None:
        """Cut every connection (as a Wi-Fi drop would, seen from the broker's side)."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[int]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        try:
            yield port
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.connections += 1
        self._writers += [writer, up_writer]

        async def upstream() -> None:
            while data := await reader.read(65536):
                self.upstream_bytes += len(data)
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if self.upstream_bytes > self.upstream_limit:
                    self.held_bytes += len(data)
                    continue
                writer.write(data)
                await writer.drain()

        try:
            _, pending = await asyncio.wait(
                [asyncio.create_task(upstream()), asyncio.create_task(downstream())],
                return_when=asyncio.FIRST_COMPLETED,
            )
            for other in pending:
                other.cancel()
        finally:
            for w in (writer, up_writer):
                w.close()
            self._tasks.discard(task)
