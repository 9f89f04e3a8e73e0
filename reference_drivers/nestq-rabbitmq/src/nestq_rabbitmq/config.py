"""The driver's settings: each reads ``NESTQ_RABBITMQ__<KEY>`` and can be pinned in ``for_root(...)``.

Add what your storage needs (credentials with ``secret=True``, a region, a key prefix), each with a ``help=``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from nestq_spec import ConfigError, env_var, load_settings, redact, setting, settings
from nestq_spec.driverkit import RetryPolicy

__all__ = ["RabbitmqConfig", "load_config"]


@settings("rabbitmq")
class RabbitmqConfig:
    """Configuration of the driver, one ``NESTQ_RABBITMQ__<KEY>`` variable per setting."""

    url: str = setting(
        default="amqp://guest:guest@localhost:5672/",
        help="the broker's AMQP URL (amqp:// or amqps://, the virtual host as its path); a password in it is "
        "never shown",
    )
    prefix: str = setting(
        default="nestq",
        help="first part of every queue name the driver declares (<prefix>.q.<queue>, <prefix>.dead.<queue>, "
        "<prefix>.delay.<ms>.<queue>); apps sharing a virtual host keep apart with different prefixes",
    )
    queue_type: str = setting(
        default="classic",
        choices=("classic", "quorum"),
        help="classic (priorities via x-max-priority) or quorum (replicated; no priorities on RabbitMQ < 4)",
    )
    max_priority: int = setting(
        default=0,
        min=0,
        max=255,
        help="x-max-priority of classic work queues (0, the default: no priorities; a priority queue costs the "
        "broker throughput)",
    )
    prefetch: int = setting(
        default=0,
        min=0,
        max=65_535,
        help="deliveries a worker's consumer may hold per queue (0: the concurrency); more hides the broker's round "
        "trip, but a job buffered when the connection drops counts as an attempt",
    )
    connect_timeout: float = setting(default=10.0, min=0.1, help="seconds the first connection may take")
    management_url: str = setting(
        default="",
        help="the management plugin's HTTP API (http://user:password@host:15672/; a password in it is never shown), "
        "for depths across processes: held counts every worker's unacked deliveries, delayed every delay queue "
        "(counts lag by the broker's collect_statistics_interval, 5 s by default); empty: AMQP only",
    )
    push_timeout: float = setting(
        default=10.0,
        min=0.1,
        help="longest a push waits for the broker's confirm, reconnection included, before it fails",
    )
    reconnect_interval: float = setting(
        default=1.0,
        min=0.05,
        max=60.0,
        help="pause before the first reconnection attempt after the connection is lost; later pauses grow with "
        "the outage up to reconnect_cap",
    )
    reconnect_cap: float = setting(
        default=30.0, min=0.05, max=3600.0, help="longest pause between two reconnection attempts, in seconds"
    )
    concurrency: int = setting(default=10, min=1, max=10_000, help="jobs one worker runs at once, all queues together")
    max_attempts: int = setting(default=3, min=1, max=1_000_000, help="attempts per job, then it is a dead letter")
    backoff_base: float = setting(default=0.5, min=0.0, help="seconds before the first retry; doubles with each retry")
    backoff_cap: float = setting(default=30.0, min=0.0, help="longest wait before a retry, in seconds")
    shutdown_grace: float = setting(default=10.0, min=0.0, help="seconds running jobs get to finish at shutdown")

    def retry_policy(self) -> RetryPolicy:
        """The attempts and backoff every failed job goes through."""
        return RetryPolicy(self.max_attempts, self.backoff_base, self.backoff_cap)


def load_config(
    pinned: RabbitmqConfig | Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
) -> RabbitmqConfig:
    """Build the configuration (pinned > ``NESTQ_RABBITMQ__*`` > defaults).

    A bad value raises a ``ConfigError`` naming its variable.
    """
    config = load_settings(RabbitmqConfig, pinned, env)
    if config.backoff_cap < config.backoff_base:
        raise ConfigError(
            f"{env_var(RabbitmqConfig, 'backoff_cap')}={config.backoff_cap} is below "
            f"{env_var(RabbitmqConfig, 'backoff_base')}={config.backoff_base}"
        )
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}", config.prefix) or config.prefix.startswith("amq."):
        raise ConfigError(
            f"{env_var(RabbitmqConfig, 'prefix')}={config.prefix!r}: use 1 to 64 ASCII letters, digits, '_', '-', "
            "'.', ':' (not starting with 'amq.', which RabbitMQ reserves)"
        )
    scheme = config.url.split("://", 1)[0].lower() if "://" in config.url else ""
    if scheme not in ("amqp", "amqps"):
        raise ConfigError(
            f"{env_var(RabbitmqConfig, 'url')}={redact(config.url, as_repr=False)} is not an AMQP URL: expected "
            "amqp://user:password@host:5672/vhost (or amqps://)"
        )
    if config.management_url and not config.management_url.lower().startswith(("http://", "https://")):
        raise ConfigError(
            f"{env_var(RabbitmqConfig, 'management_url')}={redact(config.management_url, as_repr=False)} is not an "
            "HTTP URL: expected http://user:password@host:15672/ (or https://), or empty"
        )
    return config
