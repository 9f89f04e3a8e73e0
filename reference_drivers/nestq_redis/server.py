"""A private ``redis-server`` process on a free port: for the harness (storage restarts) and for fault tests.

It runs with the settings the driver's guarantees assume (``appendonly yes``, ``appendfsync always``,
``maxmemory-policy noeviction``), in its own data folder, so it can be killed and restarted without touching
any shared server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "LinkProxy",
    "PrivateRedisCluster",
    "RedisServer",
    "RedisServerError",
    "free_port",
    "node_command",
    "ping",
    "redis_server_binary",
]


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


def _ephemeral_low() -> int:
    # The kernel hands out ports from ip_local_port_range to every outgoing connection on the machine; a port
    # picked inside it can be taken by one between the check and the server's bind.
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _cluster_port(taken: set[int]) -> int:
    # A cluster node also listens on its port + 10000 (the cluster bus): both must be free, and both are picked
    # below the kernel's ephemeral range (see _ephemeral_low), so no outgoing connection takes them in the meantime.
    top = max(_ephemeral_low() - 10001, 12000)
    for _ in range(1000):
        port = random.randint(10000, top)
        if port in taken or port + 10000 in taken:
            continue
        try:
            for candidate in (port, port + 10000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        taken.update((port, port + 10000))
        return port
    raise RedisServerError("found no free pair of ports (port, port + 10000) for a cluster node")


def node_command(port: int, *command: str, timeout: float = 2.0) -> str:
    """Send one command to the server on 127.0.0.1:``port`` and return its reply as text.

    Status, error, integer and bulk-string replies only (not arrays). A plain-socket exchange: the cluster
    helpers run outside any event loop and before any client exists.
    """
    parts = [f"*{len(command)}\r\n".encode()]
    for word in command:
        raw = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"".join(parts))
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.startswith((b"+", b"-", b":")) and data.endswith(b"\r\n"):
                break
            if data.startswith(b"$"):
                head, _, rest = data.partition(b"\r\n")
                if int(head[1:]) < 0 or len(rest) >= int(head[1:]) + 2:
                    break
    head, _, rest = data.partition(b"\r\n")
    if head.startswith(b"$"):
        return rest[: int(head[1:])].decode(errors="replace") if int(head[1:]) >= 0 else ""
    return head[1:].decode(errors="replace")


def _info(port: int, section: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    text = node_command(port, "CLUSTER", "INFO") if section == "cluster" else node_command(port, "INFO", section)
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _layout(port: int, live: set[int]) -> frozenset[tuple[int, str, str]]:
    # One node's view of the live nodes (CLUSTER NODES): each one's port, role and slot ranges.
    view = set()
    for line in node_command(port, "CLUSTER", "NODES").splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        node_port = int(fields[1].split("@")[0].rpartition(":")[2] or 0)
        if node_port not in live:
            continue
        role = "master" if "master" in fields[2].split(",") else "replica"
        view.add((node_port, role, " ".join(fields[8:])))
    return frozenset(view)


class PrivateRedisCluster:
    """A private Redis Cluster on 127.0.0.1: ``masters`` masters with ``replicas`` replicas each, on free ports.

    Every node is a :class:`RedisServer` (AOF, fsync always, noeviction) started with ``--cluster-enabled yes``;
    ``redis-cli --cluster create`` joins them. The node timeout is short (``node_timeout_ms``) so that a killed
    master's replica takes over within a few seconds, and ``cluster-require-full-coverage no`` keeps the slots of
    the live masters serving while one master is down. Use as a context manager, or :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self, *, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000, startup_timeout: float = 30.0
    ) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RedisServerError("no redis-server binary (install redis, or set NESTQ_REDIS_SERVER_BIN)")
        cli = Path(binary).with_name("redis-cli")
        found = str(cli) if cli.exists() else shutil.which("redis-cli")
        if found is None:
            raise RedisServerError("no redis-cli beside redis-server: it is needed to create a cluster")
        self.cli = found
        self.masters = masters
        self.replicas = replicas
        self.startup_timeout = startup_timeout
        args = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(node_timeout_ms), "--cluster-require-full-coverage", "no",
                # A replica may always take over, however long its link was down: the tests kill masters on purpose.
                "--cluster-replica-validity-factor", "0",
                # A replica's first sync starts at once, not after the default 5 s wait for more replicas.
                "--repl-diskless-sync-delay", "0")
        self._taken: set[int] = set()
        self.nodes = [RedisServer(binary=binary, port=_cluster_port(self._taken), extra_args=args)
                      for _ in range(masters * (1 + replicas))]

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:<port>,...`` listing every node (any one of them is enough to connect)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> PrivateRedisCluster:
        """Start every node, create the cluster, and return once every slot is served and every replica synced."""
        try:
            for node in self.nodes:
                self._start_node(node)
            create = [self.cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                      "--cluster-replicas", str(self.replicas), "--cluster-yes"]
            done = subprocess.run(create, capture_output=True, text=True, timeout=self.startup_timeout, check=False)
            if done.returncode != 0:
                raise RedisServerError(f"redis-cli --cluster create failed ({done.returncode}):\n"
                                       f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, node: RedisServer, attempts: int = 5) -> None:
        # Another process may bind a port (or its bus port) between the pick and the node's start, which makes
        # redis-server exit at once: the node moves to another free pair, as often as ``attempts`` allows.
        for attempt in range(attempts):
            try:
                node.start()
                return
            except RedisServerError as exc:
                if "Address already in use" not in str(exc) or attempt == attempts - 1:
                    raise
                (node.dir / "nodes.conf").unlink(missing_ok=True)
                node.port = _cluster_port(self._taken)

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Wait until the live nodes are ok, replicas linked, and every node sees the same layout.

        That is: every live node says ``cluster_state:ok``, every live replica's link is up, and every live node
        lists the same masters, replicas and slots.
        """
        deadline = time.monotonic() + (self.startup_timeout if timeout is None else timeout)
        last = "no node answered"
        while True:
            live = [n for n in self.nodes if n.process is not None]
            try:
                states = {n.port: _info(n.port, "cluster").get("cluster_state") for n in live}
                links = {}
                for n in live:
                    repl = _info(n.port, "replication")
                    if repl.get("role") == "slave":
                        links[n.port] = repl.get("master_link_status")
                masters = [n for n in live if _info(n.port, "replication").get("role") == "master"
                           and int(_info(n.port, "cluster").get("cluster_slots_assigned", "0")) > 0]
                # Each node learns the layout by gossip: right after a create or a failover, one node may still
                # list an old owner of some slots, and a client that reads the layout from it gets MOVED replies.
                views = {n.port: _layout(n.port, {m.port for m in live}) for n in live}
                agree = len(set(views.values())) == 1
                last = f"cluster states {states}, replica links {links}, nodes agree on the layout: {agree}"
                if (all(s == "ok" for s in states.values()) and all(v == "up" for v in links.values()) and masters
                        and agree):
                    return
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise RedisServerError(f"the private cluster did not become healthy: {last}")
            time.sleep(0.05)

    def slot_of(self, key: str) -> int:
        """The cluster slot of ``key`` (as the server computes it, hash tags included)."""
        return int(node_command(self.nodes[0].port, "CLUSTER", "KEYSLOT", key))

    def master_of(self, key: str) -> RedisServer:
        """The live node that serves ``key``'s slot as a master."""
        slot = self.slot_of(key)
        for node in self.nodes:
            if node.process is None:
                continue
            if _info(node.port, "replication").get("role") != "master":
                continue
            for line in node_command(node.port, "CLUSTER", "NODES").splitlines():
                fields = line.split()
                if "myself" not in fields[2]:
                    continue
                for part in fields[8:]:
                    low, _, high = part.partition("-")
                    if part[0].isdigit() and int(low) <= slot <= int(high or low):
                        return node
        raise RedisServerError(f"no live master serves slot {slot} of {key!r}")

    def wait_failover(self, key: str, old: RedisServer, timeout: float = 30.0) -> RedisServer:
        """Wait until a node other than ``old`` serves ``key``'s slot as a master and the cluster is ok again."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                new = self.master_of(key)
                states = [_info(n.port, "cluster").get("cluster_state") for n in self.nodes if n.process is not None]
                if new is not old and all(s == "ok" for s in states):
                    return new
            except (OSError, RedisServerError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RedisServerError(f"no replica took over the slot of {key!r} within {timeout}s")
            time.sleep(0.05)

    def restart(self) -> None:
        """SIGKILL every node and start them again on the same ports, data and ``nodes.conf``; wait until ok."""
        for node in self.nodes:
            node.kill()
        for node in self.nodes:
            node.restarts += 1
            node.start()
        self.wait_healthy()

    def stop(self) -> None:
        """Stop every node and delete its data folder."""
        for node in self.nodes:
            node.stop()

    def run_ids(self) -> str:
        """The ``run_id`` of every live node (each start gets a new one), in node order."""
        return ",".join(_info(n.port, "server").get("run_id", "?") for n in self.nodes if n.process is not None)

    def __enter__(self) -> PrivateRedisCluster:
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
