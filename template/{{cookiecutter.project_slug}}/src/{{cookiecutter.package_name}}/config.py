{%- set P = cookiecutter.__class_prefix -%}
{%- set NS = cookiecutter.__namespace|upper -%}
{%- set D = cookiecutter.__driver_name -%}
"""The driver's settings: each reads ``NESTQ_{{ NS }}__<KEY>`` and can be pinned in ``for_root(...)``.

Add what your storage needs (credentials with ``secret=True``, a region, a key prefix), each with a ``help=``.
"""

from __future__ import annotations

from collections.abc import Mapping

from nestq_spec import ConfigError, env_var, load_settings, setting, settings
from nestq_spec.driverkit import RetryPolicy{% if cookiecutter.storage_model == "leases" %}, check_heartbeat{% endif %}

__all__ = ["{{ P }}Config", "load_config"]


@settings("{{ cookiecutter.__namespace }}")
class {{ P }}Config:
    """Configuration of the driver, one ``NESTQ_{{ NS }}__<KEY>`` variable per setting."""
{% if cookiecutter.connection_style == "url" %}
    url: str = setting(
        default="{{ D }}://localhost", help="where the storage is; a password in it is never shown"
    )
{%- elif cookiecutter.connection_style == "path" %}
    path: str = setting(
        default="{{ D }}.db", help="the storage's file; every worker of a queue must use the same one"
    )
{%- else %}
    host: str = setting(default="localhost", help="the storage's host name or address")
    port: int = setting(default=0, min=0, max=65535, help="the storage's port (0: the client's default)")
    username: str = setting(default="", help="user name, if the storage asks for one")
    password: str = setting(default="", secret=True, help="password; never shown in logs or reprs")
{%- endif %}
    concurrency: int = setting(default=10, min=1, max=10_000, help="jobs one worker runs at once, all queues together")
    max_attempts: int = setting(default=3, min=1, max=1_000_000, help="attempts per job, then it is a dead letter")
    backoff_base: float = setting(default=0.5, min=0.0, help="seconds before the first retry; doubles with each retry")
    backoff_cap: float = setting(default=30.0, min=0.0, help="longest wait before a retry, in seconds")
    shutdown_grace: float = setting(default=10.0, min=0.0, help="seconds running jobs get to finish at shutdown")
{%- if cookiecutter.storage_model == "leases" %}
    visibility_timeout: float = setting(default=30.0, min=0.1, help="seconds a claimed job stays leased to a worker")
    heartbeat_interval: float = setting(default=10.0, min=0.01, help="seconds between lease extensions of running jobs")
{%- endif %}
{%- if cookiecutter.wakeups != "blocking" %}
    poll_interval: float = setting(default=1.0, min=0.01, max=60.0, help="longest pause between two empty claims")
{%- endif %}

    def retry_policy(self) -> RetryPolicy:
        """The attempts and backoff every failed job goes through."""
        return RetryPolicy(self.max_attempts, self.backoff_base, self.backoff_cap)


def load_config(
    pinned: {{ P }}Config | Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
) -> {{ P }}Config:
    """Build the configuration (pinned > ``NESTQ_{{ NS }}__*`` > defaults).

    A bad value raises a ``ConfigError`` naming its variable.
    """
    config = load_settings({{ P }}Config, pinned, env)
    if config.backoff_cap < config.backoff_base:
        raise ConfigError(
            f"{env_var({{ P }}Config, 'backoff_cap')}={config.backoff_cap} is below "
            f"{env_var({{ P }}Config, 'backoff_base')}={config.backoff_base}"
        )
{%- if cookiecutter.storage_model == "leases" %}
    names = (env_var({{ P }}Config, "heartbeat_interval"),
             env_var({{ P }}Config, "visibility_timeout"))
    check_heartbeat(config.heartbeat_interval, config.visibility_timeout, names=names)
{%- endif %}
    return config
