"""Settings of the Redis driver: every one reads ``NESTQ_REDIS__<KEY>`` and can be pinned in code.

:func:`load_config` is what the modules call at boot: it applies the precedence (pinned, environment, default),
then checks the relations between settings, raising :class:`~nestq_spec.ConfigError` naming the variables.
Passwords (in the URL or in ``password``) never appear in a repr, a log line or an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from nestq_spec import ConfigError, env_var, load_settings, redact, setting, settings

__all__ = ["SCHEMES", "SHUTDOWN_MARGIN", "RedisConfig", "display_url", "load_config"]

SCHEMES = ("redis", "rediss", "unix", "fakeredis", "redis+cluster", "rediss+cluster")
"""URL schemes the driver accepts; ``fakeredis://[name]`` runs on an embedded in-process server,
``redis+cluster://host:port[,host:port...]`` on a Redis Cluster."""

_DAY = 86400.0

SHUTDOWN_MARGIN = 5.0
"""Seconds a stopping worker may take beyond ``shutdown_grace`` (returning unstarted jobs, recording outcomes,
stopping its loops): ``shutdown_grace + SHUTDOWN_MARGIN`` must fit in the app's shutdown timeout
(``nestq run --shutdown-timeout``, 30 s by default), or a deploy with long jobs ends like a crash."""


@settings("redis")
class RedisConfig:
    """Configuration of the Redis driver (``NESTQ_REDIS__URL``, ``NESTQ_REDIS__CONCURRENCY``, ...)."""

    url: str = setting(
        default="redis://127.0.0.1:6379/0",
        help="server URL: redis://[user:password@]host:port/db, rediss:// (TLS), unix:///path?db=0, "
        "redis+cluster://[user:password@]host:port[,host:port...] (a Redis Cluster; rediss+cluster:// with TLS), "
        "or fakeredis://[name] for an embedded in-process server (demos and quick tests)",
    )
    password: str = setting(default="", secret=True, help="password, when it is not in the URL (wins over the URL's)")
    key_prefix: str = setting(default="nestq", help="prefix of every key; queues live at <prefix>:{<queue>}:...")
    visibility_timeout: float = setting(
        default=30.0, min=0.05, help="seconds a claimed job stays leased without a heartbeat before it is redelivered"
    )
    heartbeat_interval: float = setting(
        default=0.0, min=0.0, help="seconds between lease extensions of running jobs; 0: a third of visibility_timeout"
    )
    max_attempts: int = setting(default=5, min=1, max=1_000_000, help="attempts per job, the first included")
    backoff_base: float = setting(default=1.0, min=0.0, help="seconds before the first retry; doubles per attempt")
    backoff_cap: float = setting(default=300.0, min=0.0, help="longest wait before a retry, in seconds")
    backoff_jitter: float = setting(
        default=0.25, min=0.0, max=1.0, help="random extra wait, as a fraction of the backoff (never below the backoff)"
    )
    concurrency: int = setting(
        default=10, min=1, max=10_000, help="jobs one worker runs at once (all its queues together)"
    )
    claim_batch: int = setting(default=10, min=1, max=1000, help="most jobs claimed in one round trip")
    max_payload_bytes: int = setting(
        default=8 * 1024 * 1024, min=1024, max=512 * 1024 * 1024, help="largest encoded job a push accepts, in bytes"
    )
    shutdown_grace: float = setting(
        default=25.0, min=0.0, help="seconds a stopping worker waits for running jobs; later they are redelivered "
        "(keep it SHUTDOWN_MARGIN=5 s under nestq run's --shutdown-timeout, 30 s by default)"
    )
    poll_timeout: float = setting(
        default=1.0, min=0.01, max=60.0, help="longest blocking wait for new jobs, in seconds (finite: reconnects)"
    )
    sweep_interval: float = setting(
        default=1.0, min=0.01, help="seconds between sweeps for expired leases (at most visibility_timeout / 4)"
    )
    dead_letter_retention: float = setting(
        default=7 * _DAY, min=0.0, help="seconds dead letters are kept; 0: kept until purged"
    )
    dead_letter_max: int = setting(
        default=100_000, min=0, help="most dead letters kept per queue (the oldest go first); 0: no cap"
    )
    wait_replicas: int = setting(
        default=0, min=0, max=16, help="Redis Cluster only (ignored, with a warning, on a single server): replicas "
        "that must hold each write (push, claim, ack, ...) before the call returns (WAIT), so a failover loses no "
        "accepted push; 0: do not wait"
    )
    wait_timeout: float = setting(
        default=1.0, min=0.001, max=60.0, help="Redis Cluster only: seconds a write waits for wait_replicas "
        "replicas; on a shortfall the write stands on the master and a warning is logged"
    )
    connect_timeout: float = setting(default=5.0, min=0.1, help="seconds to wait for a TCP connection to Redis")
    socket_timeout: float = setting(
        default=10.0, min=0.1, help="seconds to wait for any reply (must exceed poll_timeout, which blocks on purpose)"
    )

    def effective_heartbeat(self) -> float:
        """The heartbeat interval in use: the setting, or a third of the visibility timeout when it is 0."""
        return self.heartbeat_interval or self.visibility_timeout / 3

    def effective_sweep(self) -> float:
        """The sweep interval in use: the setting, at most a quarter of the visibility timeout."""
        return min(self.sweep_interval, self.visibility_timeout / 4)

    def backoff(self, attempt: int, jitter: float = 0.0) -> float:
        """Seconds to wait before retrying after failed attempt ``attempt`` (from 1); ``jitter`` in [0, 1).

        ``backoff_base * 2 ** (attempt - 1)`` capped at ``backoff_cap``, plus up to ``backoff_jitter`` of itself
        (still capped), so a retry never comes sooner than the plain exponential backoff.
        """
        plain = min(self.backoff_cap, self.backoff_base * 2.0 ** min(attempt - 1, 60))
        return min(self.backoff_cap, plain * (1.0 + self.backoff_jitter * jitter))


def _var(name: str) -> str:
    return env_var(RedisConfig, name)


def display_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (userinfo and ``password=`` query values), for logs.

    The same masking as :func:`nestq_spec.redact` (which it calls), unquoted.
    """
    return redact(url, as_repr=False)


class _Hidden(str):
    """A secret setting's value: a plain ``str`` to the code that uses it, ``'***'`` when rendered.

    Renderings of the settings object (``repr``, ``vars()``, ``dataclasses.asdict()``, logged dicts) use repr.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'" if self else "''"


class _HiddenURL(str):
    """A URL setting's value: a plain ``str`` to the code that uses it, its password masked in renderings."""

    __slots__ = ()

    def __repr__(self) -> str:
        return redact(str.__str__(self))


def _parse_url(config: RedisConfig) -> None:
    # Parse with the client library now, at boot, so that a URL it cannot read fails here with a ConfigError
    # (and never later with a raw ValueError quoting part of the password). Its message is not shown: it can
    # hold a fragment of the password (a '#', '/' or '?' in it ends the userinfo early).
    if config.url.lower().startswith("fakeredis://"):
        return
    from redis.connection import parse_url

    from .cluster import is_cluster_url, parse_cluster_url

    if is_cluster_url(config.url):
        try:
            parse_cluster_url(config.url)
        except ValueError as exc:
            # parse_cluster_url's messages never quote the userinfo: safe to show.
            raise ConfigError(f"{_var('url')}={display_url(config.url)!r}: {exc}") from None
        return
    try:
        parse_url(config.url)  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise ConfigError(
            f"{_var('url')}={display_url(config.url)!r} cannot be read by redis-py ({type(exc).__name__}); check "
            "the host, port and database, and percent-encode special characters in the user name and password "
            "(/ as %2F, # as %23, ? as %3F, @ as %40, [ as %5B, ] as %5D, : as %3A), or set the password in "
            f"{_var('password')} instead"
        ) from None


def _check_relations(config: RedisConfig) -> RedisConfig:
    scheme = config.url.partition("://")[0].lower() if "://" in config.url else ""
    if scheme not in SCHEMES:
        raise ConfigError(
            f"{_var('url')}={display_url(config.url)!r} has no supported scheme; use one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    try:
        query = urlsplit(config.url).query
    except ValueError:
        query = ""  # reported below by _parse_url, with the password masked
    if any(k.lower() == "password" for k, _ in parse_qsl(query)):
        raise ConfigError(
            f"{_var('url')} carries a password in its query string, where it would show in logs; put it in the "
            f"URL's userinfo (redis://:PASSWORD@host) or in {_var('password')}"
        )
    if not config.key_prefix or any(c in config.key_prefix for c in "{} \t\r\n"):
        raise ConfigError(f"{_var('key_prefix')}={config.key_prefix!r} must be non-empty, without braces or spaces")
    heartbeat = config.effective_heartbeat()
    if heartbeat >= config.visibility_timeout:
        raise ConfigError(
            f"{_var('heartbeat_interval')}={config.heartbeat_interval} must be below "
            f"{_var('visibility_timeout')}={config.visibility_timeout}, or every running job loses its lease "
            "between two heartbeats and runs twice"
        )
    if config.backoff_cap < config.backoff_base:
        raise ConfigError(
            f"{_var('backoff_cap')}={config.backoff_cap} is below {_var('backoff_base')}={config.backoff_base}"
        )
    if config.socket_timeout <= config.poll_timeout:
        raise ConfigError(
            f"{_var('socket_timeout')}={config.socket_timeout} must exceed {_var('poll_timeout')}="
            f"{config.poll_timeout}: a blocking wait would otherwise look like a dead connection"
        )
    _parse_url(config)
    # Secrets stay out of every public view of the settings object (vars(), asdict(), a logged dict).
    object.__setattr__(config, "url", _HiddenURL(config.url))
    object.__setattr__(config, "password", _Hidden(config.password))
    return config


def load_config(
    pinned: RedisConfig | Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
) -> RedisConfig:
    """Build the configuration (pinned in code > ``NESTQ_REDIS__*`` > defaults) and check it.

    ``pinned`` is a whole :class:`RedisConfig` (used as is, the environment ignored), a mapping of some settings,
    or None. Raises :class:`~nestq_spec.ConfigError` naming the variable(s) for a bad value or relation.
    """
    return _check_relations(load_settings(RedisConfig, pinned, env))
