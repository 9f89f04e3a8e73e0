"""An SQS-compatible server for tests and benchmarks: ``moto``'s server mode in a subprocess on a loopback port.

moto keeps everything in memory: stopping it loses every queue. It is a test double of SQS's API, not SQS (the
driver's docs list where it behaves differently). Needs ``moto[server]`` (the project's ``dev`` extra).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from types import TracebackType

__all__ = ["DUMMY_CREDENTIALS", "EmbeddedSqs"]

DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "nestq-suite", "AWS_SECRET_ACCESS_KEY": "nestq-suite-not-a-secret"}
"""What the client signs with against moto, which accepts any credentials."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedSqs:
    """``moto_server`` on ``127.0.0.1:<free port>``; use as a context manager or call start()/stop()."""

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        self.startup_timeout = startup_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def url(self) -> str:
        """The endpoint URL to give the client (``NESTQ_SQS__ENDPOINT_URL``)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> EmbeddedSqs:
        """Start the server and wait until it accepts connections; raise naming the cause if it does not."""
        try:
            import moto.server  # noqa: F401 - only to fail early with a clear message
        except ImportError:
            raise RuntimeError(
                "the embedded SQS server needs moto[server] (pip install 'nestq-sqs[dev]'), or set "
                "NESTQ_SQS__ENDPOINT_URL to an SQS-compatible endpoint"
            ) from None
        self.port = _free_port()
        env = {**os.environ, **DUMMY_CREDENTIALS}
        # moto logs every request: into a file, since a pipe nobody reads would fill up and stall the server.
        self._log = tempfile.NamedTemporaryFile(prefix="nestq-moto-", suffix=".log")  # noqa: SIM115
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from moto.server import main; main()", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=self._log, env=env,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"moto_server exited with {self._process.returncode} at start: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)  # polling a port with a deadline: the server gives no other readiness signal
        self.stop()
        raise RuntimeError(f"moto_server did not accept connections on port {self.port} within "
                           f"{self.startup_timeout:g}s")

    def stop(self) -> None:
        """Stop the server (its queues are gone)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedSqs:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
