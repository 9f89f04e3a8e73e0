"""The driver's settings: each reads ``NESTQ_SQS__<KEY>`` and can be pinned in ``for_root(...)``.

Credentials are not settings: the client takes them from the standard AWS chain (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, the shared files, an instance or task role), so no key ever passes
through nestq's configuration, reprs or errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from nestq_spec import ConfigError, env_var, load_settings, redact, setting, settings
from nestq_spec.driverkit import RetryPolicy, check_heartbeat

__all__ = ["MAX_DELAY_SECONDS", "MAX_VISIBILITY_SECONDS", "SqsConfig", "load_config"]

MAX_VISIBILITY_SECONDS = 12 * 60 * 60
"""SQS's longest visibility timeout (and the longest a received message can stay hidden in total)."""
MAX_DELAY_SECONDS = 15 * 60
"""SQS's longest ``DelaySeconds`` for one message."""
_PREFIX = re.compile(r"[A-Za-z0-9_-]{0,40}")


@settings("sqs")
class SqsConfig:
    """Configuration of the driver, one ``NESTQ_SQS__<KEY>`` variable per setting."""

    region: str = setting(
        default="", help="AWS region of the queues; empty: the AWS chain's (AWS_REGION, AWS_DEFAULT_REGION, profile)"
    )
    endpoint_url: str = setting(
        default="", help="SQS endpoint (http[s]://host[:port]); empty: the region's AWS endpoint"
    )
    queue_prefix: str = setting(
        default="nestq-", help="prefix of every SQS queue name this driver makes ([A-Za-z0-9_-], at most 40)"
    )
    fifo: bool = setting(
        default=False, help="use FIFO queues (.fifo): order per message group, no per-message delays"
    )
    receive_wait: int = setting(
        default=20, min=1, max=20, help="seconds one ReceiveMessage long poll waits for a message (SQS allows 20)"
    )
    connect_timeout: float = setting(
        default=5.0, min=0.1, max=300.0, help="seconds to connect to the endpoint before a call fails"
    )
    call_attempts: int = setting(
        default=3, min=1, max=10, help="attempts of one SQS call on a connection error or throttling, then it fails"
    )
    concurrency: int = setting(default=10, min=1, max=10_000, help="jobs one worker runs at once, all queues together")
    max_attempts: int = setting(default=3, min=1, max=1000, help="attempts per job, then it is a dead letter")
    backoff_base: float = setting(default=0.5, min=0.0, help="seconds before the first retry; doubles with each retry")
    backoff_cap: float = setting(
        default=30.0, min=0.0, max=MAX_VISIBILITY_SECONDS, help="longest wait before a retry, in seconds (SQS: 12 h)"
    )
    shutdown_grace: float = setting(default=10.0, min=0.0, help="seconds running jobs get to finish at shutdown")
    visibility_timeout: float = setting(
        default=30.0, min=1.0, max=MAX_VISIBILITY_SECONDS,
        help="seconds a received job stays hidden from other workers (whole seconds, rounded up)",
    )
    heartbeat_interval: float = setting(default=10.0, min=0.01, help="seconds between lease extensions of running jobs")

    @property
    def lease_seconds(self) -> int:
        """The visibility timeout as SQS takes it: whole seconds, never shorter than configured."""
        return math.ceil(self.visibility_timeout)

    def retry_policy(self) -> RetryPolicy:
        """The attempts and backoff every failed job goes through."""
        return RetryPolicy(self.max_attempts, self.backoff_base, self.backoff_cap)


def load_config(
    pinned: SqsConfig | Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
) -> SqsConfig:
    """Build the configuration (pinned > ``NESTQ_SQS__*`` > defaults).

    A bad value raises a ``ConfigError`` naming its variable.
    """
    config = load_settings(SqsConfig, pinned, env)
    if config.backoff_cap < config.backoff_base:
        raise ConfigError(
            f"{env_var(SqsConfig, 'backoff_cap')}={config.backoff_cap} is below "
            f"{env_var(SqsConfig, 'backoff_base')}={config.backoff_base}"
        )
    names = (env_var(SqsConfig, "heartbeat_interval"), env_var(SqsConfig, "visibility_timeout"))
    check_heartbeat(config.heartbeat_interval, config.visibility_timeout, names=names)
    if not _PREFIX.fullmatch(config.queue_prefix):
        raise ConfigError(
            f"{env_var(SqsConfig, 'queue_prefix')}={config.queue_prefix!r}: SQS queue names allow only "
            "A-Z a-z 0-9 _ -, and the prefix may be at most 40 characters"
        )
    if config.endpoint_url:
        check_endpoint(config.endpoint_url)
    if config.region and not re.fullmatch(r"[a-z]{2}(-[a-z0-9]+)+-\d+|[a-z0-9-]{2,40}", config.region):
        raise ConfigError(f"{env_var(SqsConfig, 'region')}={config.region!r} is not an AWS region name (us-east-1)")
    return config


def check_endpoint(url: str) -> None:
    """Refuse an endpoint URL the client could not use, naming the variable (a password in it is never shown)."""
    variable = env_var(SqsConfig, "endpoint_url")
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise ConfigError(f"{variable}={redact(url)} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{variable}={redact(url)} must be http://host[:port] or https://host[:port]")
