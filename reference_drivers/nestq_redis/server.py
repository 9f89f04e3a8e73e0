"""A private ``redis-server`` process on a free port: for the harness (storage restarts) and for fault tests.

It runs with the settings the driver's guarantees assume (``appendonly yes``, ``appendfsync always``,
``maxmemory-policy noeviction``), in its own data folder, so it can be killed and restarted without touching
any shared server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["LinkProxy", "RedisServer", "RedisServerError", "free_port", "ping", "redis_server_binary"]


class RedisServerError(RuntimeError):
    """The private server could not be started (the message carries the end of its log)."""


def redis_server_binary() -> str | None:
    """The path of ``redis-server`` (``NESTQ_REDIS_SERVER_BIN`` or the one on ``PATH``), or None."""
    explicit = os.environ.get("NESTQ_REDIS_SERVER_BIN")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return shutil.which("redis-server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """Tell whether a Redis server at ``host:port`` is up and serving (not still LOADING its data).

    PONG counts, and so does NOAUTH: the server is up but wants a password.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` child process on 127.0.0.1, durable (AOF, fsync always), restartable on its port.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. :meth:`restart` kills it (SIGKILL: a
    crash, not a clean shutdown) and starts it again on the same port and data folder.
    """

    def __init__(
        self,
        *,
        binary: str | None = None,
        port: int | None = None,
        appendonly: bool = True,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 10.0,
    ) -> None:
        found = binary or redis_server_binary()
        if found is None:
            raise RedisServerError("no redis-server binary (install redis, or set NESTQ_REDIS_SERVER_BIN)")
        self.binary = found
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="nestq-redis-server-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.dir / "redis.log"

    def _command(self) -> list[str]:
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--logfile", str(self.log_path),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            *self.extra_args,
        ]

    def log_tail(self, limit: int = 2000) -> str:
        """The end of the server's log, for error messages."""
        try:
            return self.log_path.read_text("utf-8", errors="replace")[-limit:]
        except FileNotFoundError:
            return "(no log)"

    def start(self) -> RedisServer:
        """Start the server and return once it answers PING; raise :class:`RedisServerError` otherwise."""
        if self.process is not None and self.process.poll() is None:
            return self
        self.process = subprocess.Popen(
            self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self.startup_timeout
        while not ping("127.0.0.1", self.port, timeout=0.2):
            code = self.process.poll()
            if code is not None:
                self.process = None
                raise RedisServerError(
                    f"redis-server on port {self.port} exited with code {code} at startup; its log ends with:\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RedisServerError(
                    f"redis-server on port {self.port} did not answer PING within {self.startup_timeout}s; its log "
                    "ends with:\n" + self.log_tail()
                )
            time.sleep(0.01)
        return self

    def kill(self) -> None:
        """SIGKILL the server (a crash) and wait for it to exit."""
        proc, self.process = self.process, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def restart(self) -> None:
        """Kill the server and start it again on the same port and data (what was fsynced survives)."""
        self.kill()
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        """Stop the server and delete its data folder."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def version(self) -> str:
        """The server's version (``redis-server --version``)."""
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=False).stdout
        for word in out.split():
            if word.startswith("v="):
                return word[2:]
        return out.strip() or "unknown"

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


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
        self._server: asyncio.Server | None = None
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
        self.port = int(self._server.sockets[0].getsockname()[1])
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
