"""The driver's settings: each reads ``NESTQ_NATS__<KEY>`` and can be pinned in ``for_root(...)``.

Add what your storage needs (credentials with ``secret=True``, a region, a key prefix), each with a ``help=``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from nestq_spec import ConfigError, env_var, load_settings, redact, setting, settings
from nestq_spec.driverkit import RetryPolicy, check_heartbeat

__all__ = ["NatsConfig", "load_config"]

_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,64}")


@settings("nats")
class NatsConfig:
    """Configuration of the driver, one ``NESTQ_NATS__<KEY>`` variable per setting."""

    url: str = setting(
        default="nats://127.0.0.1:4222",
        help="the NATS server (nats://[user:password@]host:port; tls:// for TLS); a password in it is never shown",
    )
    stream_prefix: str = setting(
        default="nestq",
        help="names the streams (<prefix>_jobs, <prefix>_dead) and subjects (<prefix>.q.*, <prefix>.dead.*)",
    )
    connect_timeout: float = setting(default=5.0, min=0.1, max=300.0, help="seconds to wait for the server at boot")
    concurrency: int = setting(default=10, min=1, max=10_000, help="jobs one worker runs at once, all queues together")
    max_attempts: int = setting(default=3, min=1, max=1_000_000, help="attempts per job, then it is a dead letter")
    backoff_base: float = setting(default=0.5, min=0.0, help="seconds before the first retry; doubles with each retry")
    backoff_cap: float = setting(default=30.0, min=0.0, help="longest wait before a retry, in seconds")
    shutdown_grace: float = setting(default=10.0, min=0.0, help="seconds running jobs get to finish at shutdown")
    visibility_timeout: float = setting(default=30.0, min=0.1, help="seconds a claimed job stays leased to a worker")
    heartbeat_interval: float = setting(default=10.0, min=0.01, help="seconds between lease extensions of running jobs")

    def retry_policy(self) -> RetryPolicy:
        """The attempts and backoff every failed job goes through."""
        return RetryPolicy(self.max_attempts, self.backoff_base, self.backoff_cap)


def load_config(
    pinned: NatsConfig | Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
) -> NatsConfig:
    """Build the configuration (pinned > ``NESTQ_NATS__*`` > defaults).

    A bad value raises a ``ConfigError`` naming its variable.
    """
    config = load_settings(NatsConfig, pinned, env)
    if _PREFIX.fullmatch(config.stream_prefix) is None:
        raise ConfigError(
            f"{env_var(NatsConfig, 'stream_prefix')}={config.stream_prefix!r} must be 1 to 64 ASCII letters, digits, "
            "'_' or '-' (it names streams and subject tokens)"
        )
    scheme = config.url.split("://", 1)[0] if "://" in config.url else ""
    if scheme not in ("nats", "tls", "ws", "wss"):
        raise ConfigError(
            f"{env_var(NatsConfig, 'url')}={redact(config.url, as_repr=False)!r} is not a NATS URL: expected "
            "nats://host:port (or tls://, ws://, wss://)"
        )
    if config.backoff_cap < config.backoff_base:
        raise ConfigError(
            f"{env_var(NatsConfig, 'backoff_cap')}={config.backoff_cap} is below "
            f"{env_var(NatsConfig, 'backoff_base')}={config.backoff_base}"
        )
    names = (env_var(NatsConfig, "heartbeat_interval"),
             env_var(NatsConfig, "visibility_timeout"))
    check_heartbeat(config.heartbeat_interval, config.visibility_timeout, names=names)
    return config
