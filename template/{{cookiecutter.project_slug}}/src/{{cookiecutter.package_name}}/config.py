{%- set P = cookiecutter.__class_prefix -%}
{%- set NS = cookiecutter.__namespace|upper -%}
"""The driver's settings: each reads ``NESTQ_{{ NS }}__<KEY>`` and can be pinned in code.

``{{ P }}QueueModule.for_root(config)`` hands ``config`` to
:func:`load_config`: a whole :class:`{{ P }}Config` (used as is), a mapping of some settings
(the rest from the environment, then the defaults), or ``None``.

Add the settings your storage needs (credentials with ``secret=True``, a region, a key prefix...); give each a
``help=`` text, and bounds where a value can be wrong.
"""

from __future__ import annotations

from collections.abc import Mapping

from nestq_spec import ConfigError, env_var, load_settings, setting, settings

__all__ = ["{{ P }}Config", "load_config"]


@settings("{{ cookiecutter.__namespace }}")
class {{ P }}Config:
    """Configuration of the driver, one ``NESTQ_{{ NS }}__<KEY>`` variable per setting."""

    url: str = setting(
        default="{{ cookiecutter.__driver_name }}://localhost",
        help="where the storage is; a password inside the URL never appears in logs or reprs",
    )
    concurrency: int = setting(
        default=10, min=1, max=10_000, help="jobs one worker runs at once, all its queues together"
    )
    max_attempts: int = setting(
        default=3, min=1, max=1_000_000, help="attempts per job, the first included, before it becomes a dead letter"
    )
    backoff_base: float = setting(default=0.5, min=0.0, help="seconds before the first retry; doubles with each retry")
    backoff_cap: float = setting(default=30.0, min=0.0, help="longest wait before a retry, in seconds")
    visibility_timeout: float = setting(
        default=30.0, min=0.1, help="seconds a received job stays hidden from other workers before it is redelivered"
    )
    poll_interval: float = setting(
        default=1.0, min=0.01, max=60.0, help="longest one receive waits on the storage, so shutdown is prompt"
    )
    shutdown_grace: float = setting(
        default=10.0, min=0.0, help="seconds a stopping worker lets running jobs finish before interrupting them"
    )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (from 1): ``backoff_base * 2**(attempt-1)``, capped."""
        return min(self.backoff_cap, self.backoff_base * 2.0 ** min(attempt - 1, 60))


def load_config(
    pinned: {{ P }}Config | Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
) -> {{ P }}Config:
    """Build the configuration (pinned in code > ``NESTQ_{{ NS }}__*`` > defaults) and check it.

    Raises :class:`~nestq_spec.ConfigError` naming the variable for a bad value.
    """
    config = load_settings({{ P }}Config, pinned, env)
    if config.backoff_cap < config.backoff_base:
        raise ConfigError(
            f"{env_var({{ P }}Config, 'backoff_cap')}={config.backoff_cap} is below "
            f"{env_var({{ P }}Config, 'backoff_base')}={config.backoff_base}"
        )
    return config
