"""A private RabbitMQ node on free ports, in a temp folder: what makes a broker restart testable.

The shared broker (127.0.0.1:5672, its node and the epmd on 4369) is never touched. A :class:`RabbitmqNode` runs
``rabbitmq-server`` as the current user with everything of its own: node name ``nestq-<hex>@localhost``, AMQP and
distribution ports, an epmd on a port of its own (``ERL_EPMD_PORT``), an Erlang cookie in its own ``HOME``, and its
data, logs, pid file and (empty) plugin list in the folder. No config file is read (neither ``/etc/rabbitmq``'s nor
one of its own: the listener comes from ``RABBITMQ_NODE_IP_ADDRESS``/``RABBITMQ_NODE_PORT``), which also spares the
boot the config schema's translation.

The node, its epmd and Erlang's helper processes run in one process group under a small ``sh`` guard whose
standard input is a pipe from this process. The guard kills the whole group when that pipe closes, which the kernel
does when this process dies however it dies (SIGKILL included), and when the node exits by itself: a killed test
run leaves no ``beam.smp`` or ``epmd`` behind. :meth:`RabbitmqNode.restart` kills the group (SIGKILL, a crash) and
starts the node again on the same ports and data folder: durable queues and the persistent messages the broker
confirmed are recovered, as on a production broker after a crash.
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
import uuid
from pathlib import Path
from types import TracebackType

__all__ = [
    "RabbitmqNode",
    "RabbitmqNodeError",
    "amqp_answers",
    "epmd_binary",
    "free_port",
    "rabbitmq_server_binary",
]

_SERVER_VAR = "NESTQ_RABBITMQ_SERVER_BIN"

# $1 epmd, $2 its port, $3 rabbitmq-server. Asynchronous lists read /dev/null, the foreground `read` reads the pipe
# from the Python process: end of file there (that process closed it or died) or the node's exit kills the group.
_GUARD = """
"$1" -port "$2" -address 127.0.0.1 &
{ "$3"; kill -KILL 0; } &
read _ignored
kill -KILL 0
"""

# AMQP 0-9-1's protocol header: a broker that listens answers it with a Connection.Start frame (frame type 1).
_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


class RabbitmqNodeError(RuntimeError):
    """The private node could not be started (the message carries the end of its log)."""


def rabbitmq_server_binary() -> str | None:
    """The ``rabbitmq-server`` script to run as the current user, or None.

    ``NESTQ_RABBITMQ_SERVER_BIN`` when set (empty: none, to run without a private node); else the Debian package's
    ``/usr/lib/rabbitmq/bin/rabbitmq-server``; else the one on ``PATH`` unless it is Debian's ``/usr/sbin`` wrapper
    (it switches to the ``rabbitmq`` user with ``su``, which would take the node out of this process's control).
    """
    explicit = os.environ.get(_SERVER_VAR)
    if explicit is not None:
        return explicit if explicit and Path(explicit).is_file() else None
    debian = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    if debian.is_file():
        return str(debian)
    found = shutil.which("rabbitmq-server")
    if found is None:
        return None
    try:
        wrapper = "su rabbitmq" in Path(found).read_text(errors="replace")
    except OSError:
        return None
    return None if wrapper else found


def epmd_binary() -> str | None:
    """Erlang's ``epmd`` (on ``PATH``, or in the Erlang install), or None."""
    found = shutil.which("epmd")
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"), reverse=True):
        return str(candidate)
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def amqp_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Tell whether an AMQP 0-9-1 broker at ``host:port`` answers the protocol header with Connection.Start.

    RabbitMQ opens its listeners at the end of its boot, after it recovered its queues: an answer means ready.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_PROTOCOL_HEADER)
            return sock.recv(1) == b"\x01"
    except OSError:
        return False


def _group_members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that have not exited (zombies waiting to be reaped do not count)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


class RabbitmqNode:
    """One private ``rabbitmq-server`` node on 127.0.0.1, restartable on its ports and data folder.

    Use as a context manager, or call :meth:`start` and :meth:`close`. ``guest``/``guest`` logs in (from loopback).
    With ``management``, the management plugin listens on a free port (:attr:`management_url`) and samples queue
    statistics every ``stats_interval`` seconds; it makes a start slower (more modules to load).
    """

    def __init__(self, *, start_timeout: float = 90.0, management: bool = False, stats_interval: float = 0.5) -> None:
        binary, epmd = rabbitmq_server_binary(), epmd_binary()
        if binary is None or epmd is None:
            raise RabbitmqNodeError(
                f"no {'rabbitmq-server' if binary is None else 'epmd'} to run a private RabbitMQ node (install the "
                f"Debian package rabbitmq-server, or set {_SERVER_VAR} to a rabbitmq-server script)"
            )
        self.binary = binary
        self.epmd = epmd
        self.start_timeout = start_timeout
        self.nodename = f"nestq-{uuid.uuid4().hex[:10]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.management_port = free_port() if management else None
        self.stats_interval = stats_interval
        self.folder = Path(tempfile.mkdtemp(prefix="nestq-rabbitmq-node-"))
        self.starts = 0
        self.start_seconds: list[float] = []
        """How long each start took until the node answered AMQP (the first one creates the database)."""
        self._guard: subprocess.Popen[bytes] | None = None
        home = self.folder / "home"
        home.mkdir()
        cookie = home / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex)
        cookie.chmod(0o400)  # Erlang refuses a cookie file others can read
        (self.folder / "enabled_plugins").write_text("[rabbitmq_management].\n" if management else "[].\n")
        (self.folder / "rabbitmq-env.conf").write_text("")

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:<port>/``."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def management_url(self) -> str | None:
        """``http://guest:guest@127.0.0.1:<port>/`` with ``management``, else None."""
        return f"http://guest:guest@127.0.0.1:{self.management_port}/" if self.management_port else None

    @property
    def log_path(self) -> Path:
        """The node's log file (kept across restarts)."""
        return self.folder / "log" / f"{self.nodename}.log"

    @property
    def pid_path(self) -> Path:
        """The file the node writes its OS process id to at boot."""
        return self.folder / "node.pid"

    def env(self) -> dict[str, str]:
        """The environment ``rabbitmq-server`` and ``rabbitmqctl`` need to be this node (or to reach it).

        The caller's ``RABBITMQ_*`` and ``ERL_*`` variables are left out: they describe another node.
        """
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        folder = self.folder
        if self.management_port is not None:
            base["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = (
                f'-rabbitmq_management tcp_config [{{port,{self.management_port}}},{{ip,"127.0.0.1"}}] '
                f"-rabbit collect_statistics_interval {max(100, int(self.stats_interval * 1000))}"
            )
        return {
            **base,
            "HOME": str(folder / "home"),
            # An empty env file instead of /etc/rabbitmq/rabbitmq-env.conf, which names the shared node.
            "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq"),  # absent: no config file, no schema translation
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),  # absent too
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_path),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(folder / "plugins-expand"),
            "ERL_CRASH_DUMP": str(folder / "erl_crash.dump"),
        }

    def log_tail(self, limit: int = 3000) -> str:
        """The end of the node's log and console output, for error messages."""
        parts = []
        for path in (self.log_path, self.folder / "console.log"):
            with contextlib.suppress(OSError):
                parts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-limit:])
        return "\n".join(parts) or "(no log)"

    @property
    def running(self) -> bool:
        """Whether the node's process group is up (not whether it answers yet)."""
        return self._guard is not None and self._guard.poll() is None

    def start(self) -> RabbitmqNode:
        """Start the node and return once it answers AMQP (and HTTP, with management); raise otherwise."""
        if self.running:
            return self
        self.pid_path.unlink(missing_ok=True)
        began = time.monotonic()
        # The console output is the group's: the parent closes its copy at once.
        with open(self.folder / "console.log", "ab") as console:
            self._guard = guard = subprocess.Popen(
                ["/bin/sh", "-c", _GUARD, "nestq-rabbitmq-guard", self.epmd, str(self.epmd_port), self.binary],
                stdin=subprocess.PIPE, stdout=console, stderr=subprocess.STDOUT, env=self.env(), cwd=self.folder,
                start_new_session=True,
            )
        deadline = began + self.start_timeout
        while not self._ready():
            if guard.poll() is not None:
                self._guard = None
                self._reap(guard)
                raise RabbitmqNodeError(f"the RabbitMQ node {self.nodename} exited at startup; its log ends with:\n"
                                        f"{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RabbitmqNodeError(f"the RabbitMQ node {self.nodename} did not answer AMQP on port {self.port} "
                                        f"within {self.start_timeout:g}s; its log ends with:\n{self.log_tail()}")
            time.sleep(0.05)  # polling the port with a deadline: the node signals readiness no other way here
        self.starts += 1
        self.start_seconds.append(time.monotonic() - began)
        return self

    def _ready(self) -> bool:
        if not amqp_answers("127.0.0.1", self.port, timeout=0.5):
            return False
        if self.management_port is None:
            return True
        # The management plugin starts after the AMQP listener.
        try:
            with socket.create_connection(("127.0.0.1", self.management_port), timeout=0.5):
                return True
        except OSError:
            return False

    def pid(self) -> int | None:
        """The OS process id of the running node's ``beam.smp`` (from the pid file it writes at boot), or None."""
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL the node's whole process group (a crash: no clean shutdown) and wait until all of it is gone."""
        guard, self._guard = self._guard, None
        if guard is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(guard.pid, signal.SIGKILL)
            self._reap(guard)

    def stop(self) -> None:
        """Stop the node cleanly (SIGTERM: RabbitMQ shuts down in order), then end the group; SIGKILL after 30 s."""
        guard = self._guard
        pid = self.pid()
        if guard is not None and guard.poll() is None and pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                guard.wait(30)  # the guard kills the group once the node has exited
        self.kill()

    def _reap(self, guard: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            guard.wait(10)
        if guard.stdin is not None:
            guard.stdin.close()
        deadline = time.monotonic() + 15
        while members := _group_members(guard.pid):
            if time.monotonic() > deadline:
                raise RabbitmqNodeError(f"processes {members} of the RabbitMQ node {self.nodename} outlived SIGKILL")
            time.sleep(0.02)  # the kernel tears a killed process down asynchronously; nothing signals its end here

    def restart(self, *, hard: bool = True) -> None:
        """Kill (or, not ``hard``, stop cleanly) and start the node again on the same ports and data folder."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start()

    def ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``rabbitmqctl -n <node> ARGS`` against this node (its cookie and epmd); raise on failure."""
        script = Path(self.binary).with_name("rabbitmqctl")
        done = subprocess.run([str(script), "-q", "-n", self.nodename, *args], capture_output=True, text=True,
                              env=self.env(), cwd=self.folder, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RabbitmqNodeError(f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): "
                                    f"{(done.stderr or done.stdout).strip()[-1500:]}")
        return done

    def close(self) -> None:
        """Kill the node and delete its folder."""
        try:
            self.kill()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> RabbitmqNode:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
