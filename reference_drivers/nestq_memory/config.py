"""Settings of the memory driver: every one reads ``NESTQ_MEMORY__<KEY>`` and can be pinned in code.

``MemoryQueueModule.for_root(config)`` hands ``config`` to :func:`load_config`: a whole :class:`MemoryConfig`
(used as is), a mapping of some settings (the rest from the environment, then the defaults), or ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping

from nestq_spec import ConfigError, env_var, load_settings, setting, settings

__all__ = ["MemoryConfig", "load_config"]


@settings("memory")
class MemoryConfig:
    """Configuration of the in-memory driver (``NESTQ_MEMORY__CONCURRENCY``, ``NESTQ_MEMORY__MAX_ATTEMPTS``, ...)."""

    concurrency: int = setting(
        default=10, min=1, max=10_000, help="jobs one worker runs at once, all its queues together"
    )
    max_attempts: int = setting(
        default=3, min=1, max=1_000_000, help="attempts per job, the first included; then it becomes a dead letter"
    )
    backoff_base: float = setting(default=0.5, min=0.0, help="seconds before the first retry; doubles with each retry")
    backoff_cap: float = setting(default=30.0, min=0.0, help="longest wait before a retry, in seconds")
    shutdown_grace: float = setting(
        default=10.0, min=0.0, help="seconds a stopping worker lets running jobs finish; the rest go back to the queue"
    )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (from 1): ``backoff_base * 2**(attempt-1)``, capped."""
        return min(self.backoff_cap, self.backoff_base * 2.0 ** min(attempt - 1, 60))


def load_config(pinned: MemoryConfig | Mapping[str, object] | None = None,
                env: Mapping[str, str] | None = None) -> MemoryConfig:
    """Build the configuration (pinned in code > ``NESTQ_MEMORY__*`` > defaults) and check it.

    Raises :class:`~nestq_spec.ConfigError` naming the variable for a bad value, or both variables when
    ``backoff_cap`` is below ``backoff_base``.
    """
    config = load_settings(MemoryConfig, pinned, env)
    if config.backoff_cap < config.backoff_base:
        raise ConfigError(
            f"{env_var(MemoryConfig, 'backoff_cap')}={config.backoff_cap} is below "
            f"{env_var(MemoryConfig, 'backoff_base')}={config.backoff_base}"
        )
    return config
