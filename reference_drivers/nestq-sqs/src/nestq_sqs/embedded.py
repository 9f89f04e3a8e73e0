"""An SQS-compatible server for tests and benchmarks: ``moto``'s SQS backend alone, in a subprocess on loopback.

moto's own server (``moto_server``) answers every AWS service: each request is first matched against the URL
patterns of all of them, under one lock, logged, and the connection closed. This one serves moto's SQS application
only (``create_backend_app("sqs")``) through a small WSGI gateway that keeps connections open, without a log line
per request. The subprocess binds port 0 and prints the port it got, so two servers never race for a port.

moto keeps everything in memory: stopping it loses every queue. It is a test double of SQS's API, not SQS (the
driver's docs list where it behaves differently). Needs ``moto[server]`` (the project's ``dev`` extra).
"""

from __future__ import annotations

import io
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import IO, Any
from urllib.parse import unquote

__all__ = ["DUMMY_CREDENTIALS", "EmbeddedSqs", "serve"]

DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "nestq-suite", "AWS_SECRET_ACCESS_KEY": "nestq-suite-not-a-secret"}
"""What the client signs with against moto, which accepts any credentials."""


def serve(host: str = "127.0.0.1", port: int = 0, *, announce: IO[str] | None = None,
          exit_with_stdin: bool = False) -> None:
    """Serve moto's SQS backend on ``host:port`` (0: any free port) until the process ends.

    Writes the bound port as one line to ``announce`` (standard output by default) once the socket listens. With
    ``exit_with_stdin`` the process ends when its standard input closes: :class:`EmbeddedSqs` holds the other end,
    so the server goes with the process that started it, however that one ends.
    """
    from moto.moto_server.werkzeug_app import create_backend_app

    if exit_with_stdin:
        threading.Thread(target=_exit_at_end_of_stdin, name="nestq-sqs-parent-watch", daemon=True).start()
    _prompt_long_polls()
    app = create_backend_app("sqs")
    server = _Server((host, port), _handler_for(app))
    out = announce or sys.stdout
    out.write(f"{server.server_port}\n")
    out.flush()
    server.serve_forever()


def _exit_at_end_of_stdin() -> None:
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)  # the parent is gone: nobody will stop this server, and its queues are of no use to anyone


class _Server(ThreadingHTTPServer):
    """A thread per connection, and a listen backlog for a suite's burst of new clients (socketserver's is 5)."""

    request_queue_size = socket.SOMAXCONN


def _handler_for(app: Callable[..., Iterable[bytes]]) -> type[BaseHTTPRequestHandler]:
    """A WSGI gateway on ``http.server`` that keeps connections open (HTTP/1.1), one thread per connection.

    werkzeug's development server closes the connection after every response, so each SQS call paid a TCP connect
    on both sides (about 15 % of the CPU of a call, client and server alike). One thread per connection suits long
    polls: a poll holds its connection's thread, never a shared pool's.
    """

    class Gateway(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle's algorithm the body waits for the client's delayed ACK
        # of the headers (40 ms a call) on a kept-open connection.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """One line per request would cost more than the request on a busy machine."""

        def handle_request(self) -> None:
            """Run one request through the WSGI app and answer with a Content-Length, keeping the connection."""
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            address = self.server.server_address
            assert isinstance(address, tuple)
            server_host, server_port = address[:2]
            environ: dict[str, Any] = {
                "REQUEST_METHOD": self.command, "SCRIPT_NAME": "",
                "PATH_INFO": unquote(path, "latin-1"), "QUERY_STRING": query,
                "SERVER_NAME": str(server_host), "SERVER_PORT": str(server_port),
                "SERVER_PROTOCOL": self.request_version, "REMOTE_ADDR": self.client_address[0],
                "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(length),
                "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
                "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
                "wsgi.run_once": False,
            }
            for name, value in self.headers.items():
                key = "HTTP_" + name.upper().replace("-", "_")
                if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                    environ[key] = f"{environ[key]},{value}" if key in environ else value
            answer: list[Any] = []

            def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                answer[:] = [status, headers]
                return lambda data: None  # the legacy write(): moto's app returns its body instead

            try:
                result = app(environ, start_response)
                try:
                    data = b"".join(result)
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
                status, headers = answer
            except Exception as exc:  # the server must answer, whatever the emulator raised
                status, headers = "500 Internal Server Error", [("Content-Type", "text/plain")]
                data = f"{type(exc).__name__}: {exc}".encode()
                sys.stderr.write(f"embedded SQS server: {self.command} {self.path}: {data.decode()}\n")
            code, _, reason = status.partition(" ")
            self.send_response(int(code), reason)
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        # http.server looks the handler up as do_<METHOD>.
        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_request  # noqa: N815

    return Gateway


def _prompt_long_polls() -> None:
    """Make moto's long poll return when a delayed message falls due or a FIFO group frees, as SQS does.

    moto's ``ReceiveMessage`` waits on its queue's condition for 1 s at a time, and only a new message wakes it: a
    message whose ``DelaySeconds`` ends is seen at the next whole second of the poll (a job delayed 0.2 s, which SQS
    rounds up to 1 s, could wait 2 s). This waits until the earliest due time instead. Messages hidden by a
    visibility timeout keep moto's pace: a waiting poll sees them within a second of the timeout, a new one at once.
    On a FIFO queue, moto's poll reads which message groups are in flight once, as it starts: a group whose
    messages are deleted meanwhile stays blocked for the rest of the poll (up to 20 s), and with visible messages
    that it may not hand out the poll spins. Here a FIFO poll is a series of instant receives, each reading the
    groups afresh, with waits in between that a new message, a delete or a visibility change ends (each now wakes
    the queue's waiting polls). Nothing changes if this moto's queue does not look as expected.
    """
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Queue, SQSBackend

    if not all(hasattr(Queue, name) for name in ("wait_for_messages", "messages", "delete_message")) or not all(
            hasattr(SQSBackend, name) for name in ("change_message_visibility", "receive_message")):
        return

    def wake(queue: Any) -> None:
        lock = getattr(queue, "_messages_lock", None)
        if lock is not None:
            with lock:
                lock.notify_all()

    def delete_message(self: Any, receipt_handle: str) -> None:
        original_delete(self, receipt_handle)
        wake(self)

    def change_message_visibility(self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int) -> None:
        original_change(self, queue_name, receipt_handle, visibility_timeout)
        wake(self.get_queue(queue_name))

    def wait_for_messages(self: Any, timeout: int) -> None:
        lock, stored = getattr(self, "_messages_lock", None), getattr(self, "_messages", None)
        if lock is None or stored is None:
            return original(self, timeout)
        with lock:
            if self.messages:  # visible, yet none was handed out: wait for a change, as moto would spin
                lock.wait(timeout)
                return None
            now = unix_time_millis()
            soonest = min((m.delayed_until for m in stored if m.delayed_until > now), default=None)
            lock.wait(timeout if soonest is None else min(timeout, max(0.002, (soonest - now) / 1000 + 0.001)))
        return None

    def receive_message(self: Any, queue_name: str, count: int, wait_seconds_timeout: int, *args: Any,
                        **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        lock = getattr(queue, "_messages_lock", None)
        if not getattr(queue, "fifo_queue", False) or not wait_seconds_timeout or lock is None:
            return original_receive(self, queue_name, count, wait_seconds_timeout, *args, **kwargs)
        deadline = time.monotonic() + int(wait_seconds_timeout)
        while True:
            with lock:
                # Taken under the lock, so that no delete or new message slips between this receive and the wait.
                result = original_receive(self, queue_name, count, 0, *args, **kwargs)
                left = deadline - time.monotonic()
                if result or left <= 0:
                    return result
                now = unix_time_millis()
                hidden = [max(m.visible_at, m.delayed_until) for m in queue._messages]
                soonest = min((t for t in hidden if t > now), default=None)
                lock.wait(left if soonest is None else min(left, max(0.002, (soonest - now) / 1000 + 0.001)))

    # Patches of this server process only.
    original, original_delete = Queue.wait_for_messages, Queue.delete_message
    original_change, original_receive = SQSBackend.change_message_visibility, SQSBackend.receive_message
    Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]
    Queue.delete_message = delete_message  # type: ignore[method-assign]
    SQSBackend.change_message_visibility = change_message_visibility  # type: ignore[method-assign]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]


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
            [sys.executable, "-c", "from nestq_sqs.embedded import serve; serve(exit_with_stdin=True)"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env, text=True,
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
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedSqs:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
