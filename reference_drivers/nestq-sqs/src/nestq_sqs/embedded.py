"""An SQS-compatible server for tests and benchmarks: ``moto``'s SQS backend alone, in a subprocess on loopback.

moto's own server (``moto_server``) answers every AWS service: each request is first matched against the URL
patterns of all of them, under one lock. This one serves moto's SQS application only (``create_backend_app("sqs")``)
on a threaded werkzeug server, without a log line per request. The subprocess binds port 0 and prints the port it
got, so two servers never race for a port.

moto keeps everything in memory: stopping it loses every queue. It is a test double of SQS's API, not SQS (the
driver's docs list where it behaves differently). Needs ``moto[server]`` (the project's ``dev`` extra).
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from typing import IO, Any

__all__ = ["DUMMY_CREDENTIALS", "EmbeddedSqs", "serve"]

DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "nestq-suite", "AWS_SECRET_ACCESS_KEY": "nestq-suite-not-a-secret"}
"""What the client signs with against moto, which accepts any credentials."""


def serve(host: str = "127.0.0.1", port: int = 0, *, announce: IO[str] | None = None) -> None:
    """Serve moto's SQS backend on ``host:port`` (0: any free port) until the process ends.

    Writes the bound port as one line to ``announce`` (standard output by default) once the socket listens.
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class QuietHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            """One line per request would cost more than the request on a busy machine: errors still show."""

    app = create_backend_app("sqs")
    server = make_server(host, port, app, threaded=True, request_handler=QuietHandler)
    out = announce or sys.stdout
    out.write(f"{server.server_port}\n")
    out.flush()
    server.serve_forever()


class EmbeddedSqs:
    """moto's SQS backend on ``127.0.0.1:<free port>``; use as a context manager or call start()/stop()."""

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        self.startup_timeout = startup_timeout
        self.port = 0
        self._process: subprocess.Popen[str] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def url(self) -> str:
        """The endpoint URL to give the client (``NESTQ_SQS__ENDPOINT_URL``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> EmbeddedSqs:
        """Start the server and wait until it listens; raise naming the cause if it does not."""
        try:
            import moto.server  # noqa: F401 - only to fail early with a clear message
        except ImportError:
            raise RuntimeError(
                "the embedded SQS server needs moto[server] (pip install 'nestq-sqs[dev]'), or set "
                "NESTQ_SQS__ENDPOINT_URL to an SQS-compatible endpoint"
            ) from None
        env = {**os.environ, **DUMMY_CREDENTIALS}
        # Errors go to a file: a pipe nobody reads would fill up and stall the server.
        self._log = tempfile.NamedTemporaryFile(prefix="nestq-moto-", suffix=".log")  # noqa: SIM115
        self._process = process = subprocess.Popen(
            [sys.executable, "-c", "from nestq_sqs.embedded import serve; serve()"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log, env=env, text=True,
        )
        assert process.stdout is not None
        line = ""
        deadline = time.monotonic() + self.startup_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            # Wait for the port line (the server's only output), for the process to end, or for the deadline.
            while not line.endswith("\n") and time.monotonic() < deadline:
                if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                    chunk = process.stdout.readline()
                    if not chunk:
                        break  # end of file: the process exited
                    line += chunk
        if line.strip().isdigit():
            self.port = int(line)
            return self
        exited, errors = process.poll(), self._errors()
        self.stop()
        if exited is not None:
            raise RuntimeError(f"the embedded SQS server exited with {exited} at start: {errors}")
        raise RuntimeError(f"the embedded SQS server did not listen within {self.startup_timeout:g}s: "
                           f"{errors or line!r}")

    def _errors(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        """Stop the server (its queues are gone)."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedSqs:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
