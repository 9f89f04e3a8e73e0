"""Redis Cluster support: ``redis+cluster://`` (and ``rediss+cluster://``) URLs, on redis-py's async cluster client.

Nothing in the queue model changes on a cluster: every key of a queue carries the ``{queue}`` hash tag, so each
Lua script touches one slot, on one master. What spans queues never needs a cross-slot command: the queue
registry is one set (its own slot, written with single-key SADD), wake-ups are per queue, and the operator API
lists queues from that set and then asks each queue on its own.

:class:`NestqRedisCluster` adds two things to ``redis.asyncio.cluster.RedisCluster``:

- **Durable writes** (``wait_replicas`` > 0): a script that writes is sent together with ``WAIT wait_replicas
  wait_timeout`` on one connection to the slot's master, so the call returns once that many replicas hold the
  write (``WAIT`` counts the writes of its own connection, hence the shared connection). A push that returned
  then survives the master's failover. When fewer replicas confirm in time, the write still stands on the master;
  the shortfall is logged (rate-limited) and counted in :attr:`NestqRedisCluster.unreplicated`. A master with
  fewer replicas connected than ``wait_replicas`` (one that took over from a dead master) gets its writes
  without WAIT, logged and counted the same way, until its replicas are back: a wait that cannot succeed would
  cost every write the whole ``wait_timeout``.
- **One clear error** for "no node of the cluster answers": :class:`ClusterUnavailableError`, a
  ``redis.exceptions.ConnectionError`` (so the worker's loops back off and retry, as for a single Redis) whose
  message names the configured nodes, never a password.

MOVED, ASK, TRYAGAIN and CLUSTERDOWN replies come before a command runs, so re-sending is safe and done here;
a connection error during a command is never re-sent when the client was built with ``resend=False`` (a claim
whose reply was lost must not run twice, issue 13 item 4): the topology is refreshed and the error raised.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import redis.asyncio
import redis.exceptions
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from . import scripts

__all__ = [
    "CLUSTER_SCHEMES",
    "AnyRedis",
    "ClusterUnavailableError",
    "NestqRedisCluster",
    "NotAClusterError",
    "is_cluster_url",
    "make_cluster_client",
    "parse_cluster_url",
]

log = logging.getLogger("nestq.redis")

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
"""URL schemes of a Redis Cluster: ``redis+cluster://[user:password@]host:port[,host:port...]`` (TLS: rediss)."""

# Scripts that only read: no WAIT after them (it would cost a replication round trip for nothing).
_READ_ONLY = frozenset(hashlib.sha1(s.encode()).hexdigest() for s in (scripts.DEPTH, scripts.NEXT_DUE,
                                                                       scripts.DEAD_LIST))
# Redirections and transient cluster states: the command did not run, so sending it again is safe.
_REDIRECTS = (redis.exceptions.AskError, redis.exceptions.TryAgainError, redis.exceptions.ClusterDownError)
_LINK_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
_REDIRECT_ATTEMPTS = 5
_REPORT_EVERY = 5.0
_RECHECK = 1.0


_UNSENT_ATTEMPTS = 3
"""Sends of one command that may find their connection closed under them by a layout refresh (nothing sent)."""


def _unsent(exc: AttributeError) -> bool:
    # The one AttributeError that means "this connection's writer was closed before anything was written".
    return "writelines" in str(exc) or "'write'" in str(exc)


class ClusterUnavailableError(redis.exceptions.ConnectionError):
    """No node of the configured Redis Cluster answered (or none serves the slot a command needs)."""


class NotAClusterError(ClusterUnavailableError):
    """A ``redis+cluster://`` URL names a server that is not in cluster mode: a configuration error."""


# Errors no retry cures: raised as they are (not as ClusterUnavailableError), so a worker's boot check fails.
_PERMANENT = (
    redis.exceptions.AuthenticationError,
    redis.exceptions.AuthenticationWrongNumberOfArgsError,
    redis.exceptions.NoPermissionError,
)


def is_cluster_url(url: str) -> bool:
    """Tell whether ``url`` names a Redis Cluster (``redis+cluster://`` or ``rediss+cluster://``)."""
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def parse_cluster_url(url: str) -> dict[str, Any]:
    """Read a cluster URL into ``nodes`` [(host, port), ...], ``username``, ``password`` and ``ssl``.

    Raises ``ValueError`` with a message that never quotes the userinfo (it may hold a password).
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in CLUSTER_SCHEMES:
        raise ValueError("not a redis+cluster:// or rediss+cluster:// URL")
    userinfo, at, hostpart = rest.rpartition("@")
    cut = min((i for i in (hostpart.find("/"), hostpart.find("?"), hostpart.find("#")) if i >= 0),
              default=len(hostpart))
    hosts, tail = hostpart[:cut], hostpart[cut:]
    if tail.startswith("?") or "?" in tail or "#" in tail:
        raise ValueError("a cluster URL takes no query string or fragment; use the NESTQ_REDIS__* settings")
    if tail.strip("/") not in ("", "0"):
        raise ValueError("a Redis Cluster has only database 0; drop the path or use /0")
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):
            host, close, port_text = item[1:].partition("]")
            if not close or not port_text.startswith(":"):
                raise ValueError(f"node {item!r}: write an IPv6 node as [address]:port")
            port_text = port_text[1:]
        else:
            host, _, port_text = item.rpartition(":")
            if not host:
                host, port_text = item, "6379"
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"node {item!r}: the port is not a number") from None
        if not host or not 0 < port < 65536:
            raise ValueError(f"node {item!r}: expected host:port")
        nodes.append((host, port))
    if not nodes:
        raise ValueError("a cluster URL lists at least one node: redis+cluster://host:port[,host:port...]")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    return {"nodes": nodes, "username": username, "password": password, "ssl": scheme.lower() == "rediss+cluster"}


class NestqRedisCluster(RedisCluster):
    """``redis.asyncio.cluster.RedisCluster`` with durable writes (``WAIT``) and :class:`ClusterUnavailableError`.

    ``wait_replicas``: replicas that must hold a script's writes before the call returns (0: no wait);
    ``wait_timeout``: seconds to wait for them. ``resend``: whether a command whose connection failed may be sent
    again (False for the worker's client). ``where`` is the redacted node list, for messages.
    """

    def __init__(
        self, *args: Any, wait_replicas: int = 0, wait_timeout: float = 1.0, resend: bool = True, where: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.wait_replicas = wait_replicas
        self.wait_timeout = wait_timeout
        self.resend = resend
        self.where = where
        self.unreplicated = 0
        """Writes that fewer than ``wait_replicas`` replicas confirmed within ``wait_timeout``."""
        self._next_report = 0.0
        self._replicas: dict[str, tuple[float, bool]] = {}

    def __repr__(self) -> str:
        return f"NestqRedisCluster({self.where})"

    async def initialize(self, *args: Any, **kwargs: Any) -> NestqRedisCluster:
        """Discover the cluster's nodes and slots; :class:`ClusterUnavailableError` when no node answers."""
        try:
            await super().initialize(*args, **kwargs)
        except redis.exceptions.RedisClusterException as exc:
            cause = exc.__cause__
            if isinstance(cause, _PERMANENT):
                raise cause from None
            if "Cluster mode is not enabled" in str(exc):
                raise NotAClusterError(
                    f"the server at {self.where} is not in cluster mode (CLUSTER SLOTS is refused); use a "
                    "redis:// URL for a single server, or point redis+cluster:// at the nodes of a Redis Cluster"
                ) from None
            # redis-py's message names the node and the socket error, never a password.
            last = f": {type(cause).__name__}: {cause}" if cause is not None else ""
            raise ClusterUnavailableError(
                f"no node of the Redis Cluster at {self.where} answered with the cluster's layout{last}; check "
                "the node list in NESTQ_REDIS__URL and that the cluster is up"
            ) from None
        return self

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Run a command on the node that serves it; cluster-level failures become :class:`ClusterUnavailableError`.

        An ``EVALSHA`` of a writing script waits for ``wait_replicas`` replicas when that is above 0.
        """
        try:
            if self.wait_replicas > 0 and args and args[0] == "EVALSHA" and str(args[1]) not in _READ_ONLY:
                return await self._durable(args)
            if self._initialize:
                # redis-py 8.1 picks a command's node before it reads the layout, and while no layout is known it
                # picks a random master: a new client's first command (or the first after a refresh) drew a MOVED,
                # whose refresh recycles every connection under the commands in flight.
                await self.initialize()
            for attempt in range(_UNSENT_ATTEMPTS):
                try:
                    return await super().execute_command(*args, **kwargs)
                except AttributeError as exc:
                    # redis-py's layout refresh (after a MOVED, say) disconnects idle connections from a background
                    # task that can close one another command has just taken: its send finds no writer. Nothing
                    # went out, so sending again is safe for every client, the worker's included.
                    if not _unsent(exc) or attempt == _UNSENT_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
        except redis.exceptions.RedisClusterException as exc:
            # SlotNotCoveredError and friends are not RedisErrors: turned into one, the worker's loops retry them.
            raise ClusterUnavailableError(
                f"the Redis Cluster at {self.where} cannot serve {args[0]!s} now ({type(exc).__name__}: {exc})"
            ) from None

    async def _durable(self, args: Sequence[Any]) -> Any:
        """Send ``args`` (an EVALSHA) and ``WAIT`` on one connection of the slot's master; return the script's reply."""
        wait_ms = max(1, round(self.wait_timeout * 1000))
        asking_node: str | None = None
        for attempt in range(_REDIRECT_ATTEMPTS):
            await self.initialize()
            if asking_node is not None:
                node = self.get_node(node_name=asking_node)
                if node is None:
                    self._initialize = True
                    asking_node = None
                    continue
                commands = [PipelineCommand(0, "ASKING")]
            else:
                slot = await self._determine_slot(*args)
                node = self.nodes_manager.get_node_from_slot(slot)
                commands = []
            commands.append(PipelineCommand(len(commands), *args))
            try:
                waiting = await self._has_replicas(node)
                if waiting:
                    commands.append(PipelineCommand(len(commands), "WAIT", self.wait_replicas, wait_ms))
                await node.execute_pipeline(commands)
                # redis-py stores a reply it could not read in the command instead of raising it: a link that
                # broke after the send (or was closed under this call by a layout refresh another write started)
                # is the same failure as one that broke during it.
                lost = next((c.result for c in commands if isinstance(c.result, _LINK_ERRORS)), None)
                if lost is not None:
                    raise lost
            except AttributeError as exc:
                # redis-py sent on a connection a layout refresh (started by another write) had just disconnected:
                # its writer is gone, so nothing went out and the command did not run. Sending it again is safe for
                # every client, the worker's included; anything else than that race is raised as it is.
                if attempt >= _UNSENT_ATTEMPTS - 1 or not _unsent(exc) or any(c.result is not None for c in commands):
                    raise
                continue
            except _LINK_ERRORS as exc:
                # The layout is read again before the next command, which finds the replica that took over. The
                # script may have run: only a client allowed to re-send (the producer's, whose pushes are
                # idempotent) sends it again, as a plain client's retry policy would (two more tries).
                self._initialize = True
                if self.resend and attempt < 2:
                    await asyncio.sleep(0.05 * 2**attempt)
                    continue
                if isinstance(exc, redis.exceptions.RedisError):
                    raise
                raise redis.exceptions.ConnectionError(f"{type(exc).__name__}: {exc}") from exc
            reply = commands[-2 if waiting else -1].result
            acked = commands[-1].result if waiting else None
            if isinstance(reply, redis.exceptions.MovedError):
                # The slot moved (a failover, a resharding): read the whole layout again, as rare as that is.
                self._initialize = True
                asking_node = None
                continue
            if isinstance(reply, redis.exceptions.AskError):
                asking_node = f"{reply.host}:{reply.port}"
                continue
            if isinstance(reply, _REDIRECTS):
                self._initialize = True
                asking_node = None
                await asyncio.sleep(0.05 * 2**attempt)  # a failover in progress: give it a moment
                continue
            if isinstance(reply, BaseException):
                raise reply
            if not waiting:
                self._shortfall(node.name, "it has fewer replicas connected; the write was not waited for")
            elif isinstance(acked, BaseException) or int(acked or 0) < self.wait_replicas:
                self._replicas.pop(node.name, None)  # look at its replicas again before the next write
                self._shortfall(node.name, f"{acked} confirmed it within {self.wait_timeout:.2f}s")
            return reply
        raise ClusterUnavailableError(
            f"the Redis Cluster at {self.where} kept redirecting a write ({_REDIRECT_ATTEMPTS} attempts): its "
            "layout is changing (a failover or a resharding); retry"
        )

    async def _has_replicas(self, node: ClusterNode) -> bool:
        # A master whose replica is gone (it took over from a dead master, say) would hold every write for the
        # whole wait_timeout and still fall short: its writes are not waited for until enough replicas are
        # connected again, which is looked up at most once a second per master.
        now = time.monotonic()
        known = self._replicas.get(node.name)
        if known is None or now >= known[0]:
            try:
                info = await node.execute_command("INFO", "replication")
            except redis.exceptions.ResponseError:
                # INFO refused (an ACL without it, a managed service): always wait, as asked; asked again later.
                known = (now + 60 * _RECHECK, True)
            else:
                known = (now + _RECHECK, int(info.get("connected_slaves", 0)) >= self.wait_replicas)
            self._replicas[node.name] = known
        return known[1]

    def _shortfall(self, node: str, how: str) -> None:
        self.unreplicated += 1
        now = time.monotonic()
        if now >= self._next_report:
            self._next_report = now + _REPORT_EVERY
            log.warning(
                "Redis Cluster at %s: a write to master %s wanted %d replica(s), %s (%d such write(s) so far); it "
                "stands on the master but is lost if that master fails before a replica has it", self.where, node,
                self.wait_replicas, how, self.unreplicated,
            )


def make_cluster_client(
    url: str,
    *,
    password: str = "",
    socket_timeout: float,
    connect_timeout: float,
    wait_replicas: int = 0,
    wait_timeout: float = 1.0,
    resend: bool = True,
    where: str = "",
) -> NestqRedisCluster:
    """A :class:`NestqRedisCluster` for a ``redis+cluster://`` URL (bytes replies, bounded timeouts).

    ``password`` (the setting) wins over the URL's. ``resend=False``: a command whose connection failed is never
    sent again by the client.
    """
    parsed = parse_cluster_url(url)
    kwargs: dict[str, Any] = {
        "startup_nodes": [ClusterNode(host, port) for host, port in parsed["nodes"]],
        "decode_responses": False,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        # The slots of the live masters keep serving while one master is down (its queues wait for the failover).
        "require_full_coverage": False,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2 if resend else 0),
        "ssl": parsed["ssl"],
    }
    if parsed["username"]:
        kwargs["username"] = parsed["username"]
    if password or parsed["password"]:
        kwargs["password"] = password or parsed["password"]
    return NestqRedisCluster(wait_replicas=wait_replicas, wait_timeout=wait_timeout, resend=resend, where=where,
                             **kwargs)



AnyRedis = redis.asyncio.Redis | NestqRedisCluster
"""The clients the driver runs on: one Redis server, or a Redis Cluster."""
