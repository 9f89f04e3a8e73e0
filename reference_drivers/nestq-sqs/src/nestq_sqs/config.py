"""The driver's settings: each reads ``NESTQ_SQS__<KEY>`` and can be pinned in ``for_root(...)``.

Add what your storage needs (credentials with ``secret=True``, a region, a key prefix), each with a ``help=``.
"""

from __future__ import annotations

from collections.abc import Mapping

from nestq_spec import ConfigError, env_var, load_settings, setting, settings
from nestq_spec.driverkit import RetryPolicy, check_heartbeat

__all__ = ["SqsConfig", "load_config"]


@settings("sqs")
class SqsConfig:
    """Configuration of the driver, one ``NESTQ_SQS__<KEY>`` variable per setting."""

    url: str = setting(
        default="sqs://localhost", help="where the storage is; a password in it is never shown"
    )
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
    names = (env_var(SqsConfig, "heartbeat_interval"),
             env_var(SqsConfig, "visibility_timeout"))
    check_heartbeat(config.heartbeat_interval, config.visibility_timeout, names=names)
    return config
