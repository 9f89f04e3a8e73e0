"""A private ``nats-server -js`` process on a free port with its own store folder: for storage restarts and faults.

It is restartable on the same port and store folder, so JetStream's file storage (streams, consumers, pending
acks) survives the restart the way a production server's does. The shared server on 4222 is never touched.
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
from pathlib import Path
from types import TracebackType

__all__ = ["NatsServer", "NatsServerError", "free_port", "nats_server_binary", "server_answers"]


class NatsServerError(RuntimeError):
    """The private server could not be started (the message carries the end of its log)."""


def nats_server_binary() -> str | None:
    """The path of ``nats-server`` (``NESTQ_NATS_SERVER_BIN``, ``PATH``, or ``/usr/sbin``), or None."""
    explicit = os.environ.get("NESTQ_NATS_SERVER_BIN")
    if explicit:
        return explicit if Path(explicit).exists() else None
    found = shutil.which("nats-server")
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin", "/usr/local/bin"):
        candidate = Path(folder) / "nats-server"
        if candidate.exists():
            return str(candidate)
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Tell whether a NATS server at ``host:port`` sends its ``INFO`` greeting."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


class NatsServer:
    """One ``nats-server -js`` child process on 127.0.0.1, file storage in its own folder, restartable."""

    def __init__(self, *, port: int | None = None, user: str | None = None, password: str | None = None,
                 start_timeout: float = 10.0) -> None:
        binary = nats_server_binary()
        if binary is None:
            raise NatsServerError(
                "no nats-server binary (install the Debian package nats-server, or set NESTQ_NATS_SERVER_BIN)"
            )
        self.binary = binary
        self.port = port or free_port()
        self.user = user
        self.password = password
        self.start_timeout = start_timeout
        self.folder = Path(tempfile.mkdtemp(prefix="nestq-nats-server-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``nats://[user:password@]127.0.0.1:<port>``."""
        auth = f"{self.user}:{self.password}@" if self.user else ""
        return f"nats://{auth}127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The server's log file (kept across restarts)."""
        return self.folder / "nats-server.log"

    def log_tail(self, limit: int = 2000) -> str:
        """The end of the server's log, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def start(self) -> NatsServer:
        """Start the server and return once it greets clients (raise :class:`NatsServerError` otherwise)."""
        command = [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.folder / "store")]
        if self.user:
            command += ["--user", self.user, "--pass", self.password or ""]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        # The log is the child's: the parent closes its copy at once (no descriptor stays open here).
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NatsServerError(f"nats-server exited with {self.process.returncode}: {self.log_tail()}")
            # JetStream is up once this start has logged "Server is ready" (it recovers the store first).
            if server_answers("127.0.0.1", self.port) and self._ready_since(offset):
                return self
            time.sleep(0.02)
        self.kill()
        raise NatsServerError(f"nats-server on port {self.port} did not answer within {self.start_timeout}s: "
                              f"{self.log_tail()}")

    def _ready_since(self, offset: int) -> bool:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return b"Server is ready" in log.read()
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server (no clean shutdown) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """Stop the server cleanly (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def restart(self, *, hard: bool = False) -> None:
        """Stop (or with ``hard``, SIGKILL) and start again on the same port and store folder."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and delete its folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with contextlib.suppress(Exception):
            self.close()
