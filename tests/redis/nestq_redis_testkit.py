"""Helpers shared by the Redis driver's tests (imported by name: this folder is on sys.path, not a package)."""

from __future__ import annotations

import asyncio
import os

import pytest
import redis.asyncio
from nestq_redis.server import redis_server_binary


def require_redis_server() -> None:
    """Skip (fail under CI=true) when there is no redis-server binary to start."""
    if redis_server_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but redis-server is not installed; the Redis driver's fault tests need it")
        pytest.skip("redis-server is not installed")


async def count_keys(client: redis.asyncio.Redis, prefix: str) -> int:
    """Number of keys under ``prefix:``."""
    return len([k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)])


class LinkProxy:
    """A TCP proxy on 127.0.0.1 in front of a Redis server, able to break the link the way networks do.

    Runs in the test's event loop (``async with LinkProxy(port) as proxy``; clients use ``proxy.url``).
    ``cut()`` closes every open connection and refuses new ones until ``restore()``; ``cut_after(n)`` cuts once
    ``n`` more bytes have gone from clients to the server; ``drop_reply_after(marker, times)`` closes a
    connection instead of delivering the first reply that follows a request containing ``marker`` (the command
    ran on the server, its reply is lost), ``times`` times. ``cuts`` counts cuts and dropped replies.
    """

    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream_port = upstream_port
        self.port = 0
        self.down = False
        self.cuts = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._budget: int | None = None
        self._marker = b""
        self._drops = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<proxy port>/0``."""
        return f"redis://{self.host}:{self.port}/0"

    async def __aenter__(self) -> LinkProxy:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self._close_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        """Close every connection and refuse new ones until :meth:`restore`."""
        self.down = True
        self.cuts += 1
        self._close_all()

    def restore(self) -> None:
        """Accept and forward connections again."""
        self.down = False
        self._budget = None

    def cut_after(self, n_bytes: int) -> None:
        """Cut (as :meth:`cut`) once ``n_bytes`` more bytes have been forwarded from clients to the server."""
        self._budget = n_bytes

    def drop_reply_after(self, marker: bytes, times: int) -> None:
        """Lose the reply to the next ``times`` requests that contain ``marker`` (closing their connection)."""
        self._marker = marker
        self._drops = times

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        armed = {"drop": False}
        tasks = [asyncio.create_task(self._pump(reader, up_writer, armed, upstream=True)),
                 asyncio.create_task(self._pump(up_reader, writer, armed, upstream=False))]
        self._tasks.update(tasks)
        for task in tasks:
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, armed: dict[str, bool],
                    *, upstream: bool) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if upstream:
                    if self._drops > 0 and self._marker and self._marker in data:
                        self._drops -= 1
                        armed["drop"] = True
                    if self._budget is not None:
                        self._budget -= len(data)
                        if self._budget <= 0:
                            writer.write(data[: len(data) + self._budget])
                            self.cut()
                            break
                elif armed["drop"]:
                    # The command ran on the server; its reply never reaches the client.
                    armed["drop"] = False
                    self.cuts += 1
                    writer.transport.abort()
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
