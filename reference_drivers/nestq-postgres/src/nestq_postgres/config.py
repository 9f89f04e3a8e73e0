"""The driver's settings: each reads ``NESTQ_POSTGRES__<KEY>`` and can be pinned in ``for_root(...)``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from nestq_spec import ConfigError, env_var, load_settings, redact, setting, settings
from nestq_spec.driverkit import RetryPolicy, check_heartbeat

__all__ = ["DEFAULT_DSN", "PostgresConfig", "display_dsn", "load_config"]

DEFAULT_DSN = "postgresql://127.0.0.1:5432/postgres"
"""Where the driver connects when ``NESTQ_POSTGRES__DSN`` is not set."""

# A schema name is interpolated into SQL (identifiers cannot be bound parameters), so it is held to a plain
# identifier: lowercase so that unquoted and quoted spellings name the same schema.
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@settings("postgres")
class PostgresConfig:
    """Configuration of the driver, one ``NESTQ_POSTGRES__<KEY>`` variable per setting."""

    dsn: str = setting(
        default=DEFAULT_DSN,
        help="libpq connection URL, postgresql://user:password@host:port/database; the password is never shown",
    )
    schema: str = setting(default="nestq", help="the PostgreSQL schema holding the queue tables (a plain identifier)")
    migrate: bool = setting(
        default=False, help="create or upgrade the schema at boot; off: a worker meeting another version fails"
    )
    pool_size: int = setting(default=10, min=1, max=1000, help="connections in the pool (producer and worker)")
    connect_timeout: float = setting(default=10.0, min=0.1, max=600.0, help="seconds to wait for a connection")
    concurrency: int = setting(default=10, min=1, max=10_000, help="jobs one worker runs at once, all queues together")
    max_attempts: int = setting(default=3, min=1, max=1_000_000, help="attempts per job, then it is a dead letter")
    backoff_base: float = setting(default=0.5, min=0.0, help="seconds before the first retry; doubles with each retry")
    backoff_cap: float = setting(default=30.0, min=0.0, help="longest wait before a retry, in seconds")
    shutdown_grace: float = setting(default=10.0, min=0.0, help="seconds running jobs get to finish at shutdown")
    visibility_timeout: float = setting(default=30.0, min=0.1, help="seconds a claimed job stays leased to a worker")
    heartbeat_interval: float = setting(default=10.0, min=0.01, help="seconds between lease extensions of running jobs")
    poll_interval: float = setting(
        default=1.0, min=0.01, max=60.0,
        help="longest pause between two empty claims (LISTEN/NOTIFY wakes idle workers sooner)",
    )
    max_payload_bytes: int = setting(
        default=1024 * 1024, min=1, max=256 * 1024 * 1024, help="largest envelope push accepts, in bytes"
    )

    def retry_policy(self) -> RetryPolicy:
        """The attempts and backoff every failed job goes through."""
        return RetryPolicy(self.max_attempts, self.backoff_base, self.backoff_cap)


def display_dsn(dsn: str) -> str:
    """``dsn`` with its password masked, for messages and logs."""
    return redact(dsn, as_repr=False)


def load_config(
    pinned: PostgresConfig | Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
) -> PostgresConfig:
    """Build the configuration (pinned > ``NESTQ_POSTGRES__*`` > defaults).

    A bad value raises a ``ConfigError`` naming its variable.
    """
    config = load_settings(PostgresConfig, pinned, env)
    if config.backoff_cap < config.backoff_base:
        raise ConfigError(
            f"{env_var(PostgresConfig, 'backoff_cap')}={config.backoff_cap} is below "
            f"{env_var(PostgresConfig, 'backoff_base')}={config.backoff_base}"
        )
    names = (env_var(PostgresConfig, "heartbeat_interval"),
             env_var(PostgresConfig, "visibility_timeout"))
    check_heartbeat(config.heartbeat_interval, config.visibility_timeout, names=names)
    check_dsn(config.dsn)
    if not _SCHEMA.fullmatch(config.schema):
        raise ConfigError(
            f"{env_var(PostgresConfig, 'schema')}={config.schema!r} is not a plain schema name: use 1 to 63 "
            "lowercase ASCII letters, digits or '_', not starting with a digit"
        )
    return config


def check_dsn(dsn: str) -> None:
    """Raise a ``ConfigError`` (password masked) when ``dsn`` is not a ``postgresql://`` URL libpq can read."""
    variable = env_var(PostgresConfig, "dsn")
    shown = display_dsn(dsn)
    try:
        parts = urlsplit(dsn)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{variable}={shown!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError(
            f"{variable}={shown!r} must start with postgresql:// (or postgres://), found scheme {parts.scheme!r}"
        )
    if port == 0:
        raise ConfigError(f"{variable}={shown!r}: port 0 is not a port")
