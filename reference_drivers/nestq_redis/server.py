"""A private ``redis-server`` process on a free port: for the harness (storage restarts) and for fault tests.

It runs with the settings the driver's guarantees assume (``appendonly yes``, ``appendfsync always``,
``maxmemory-policy noeviction``), in its own data folder, so it can be killed and restarted without touching
any shared server.
"""

from __future__ import annotations

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

__all__ = ["RedisServer", "RedisServerError", "free_port", "ping", "redis_server_binary"]


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
