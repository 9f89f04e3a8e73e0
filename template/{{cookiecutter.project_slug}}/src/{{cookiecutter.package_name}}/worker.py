{%- set P = cookiecutter.__class_prefix -%}
{%- set PKG = cookiecutter.package_name -%}
{%- set LEASES = cookiecutter.storage_model == "leases" -%}
"""The worker side: :class:`{{ P }}Worker`, the storage primitives under nestq's worker loop.

``nestq_spec.driverkit.QueueWorker`` runs the loop: concurrency, cancel and shutdown grace, dispatch in the job
context, the retry policy and error text, batched outcomes{% if LEASES %}, heartbeats that extend running jobs' leases{% endif %}.
Fill only what your storage does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

{% if cookiecutter.wakeups == "notifications" %}from nestq_spec import Container
{% endif %}from nestq_spec.driverkit import Delivery, QueueWorker{% if cookiecutter.wakeups == "notifications" %}, Wakeup{% endif %}{% if cookiecutter.wakeups != "blocking" %}, poll_receive{% endif %}

from .config import {{ P }}Config
from .connection import {{ P }}Connection

__all__ = ["{{ P }}Worker"]

_MARK = "src/{{ PKG }}/worker.py marker"


class {{ P }}Worker(QueueWorker[Any]):
    """Receives from the queues the app's ``@process`` methods name; ``Delivery.handle`` is what settling needs."""

    def __init__(self, connection: {{ P }}Connection, config: {{ P }}Config) -> None:
        super().__init__(
            concurrency=config.concurrency,
            shutdown_grace=config.shutdown_grace,
            retry_policy=config.retry_policy(),
{%- if LEASES %}
            heartbeat_interval=config.heartbeat_interval,
{%- endif %}
        )
        self.connection = connection
        self.config = config
{%- if cookiecutter.wakeups == "notifications" %}
        self.wakeup = Wakeup()

    async def configure(self, container: Container) -> None:
        """Fill marker (3b): subscribe to the storage's notifications and call ``self.wakeup.notify()`` on each."""
{%- endif %}
{%- if cookiecutter.wakeups == "blocking" %}

    async def receive(self, queues: Sequence[str], limit: int, wait: float) -> Sequence[Delivery[Any]]:
        """Marker (3): take up to ``limit`` jobs of ``queues``, waiting at most ``wait`` seconds (or until stopping)."""
        raise NotImplementedError(f"{_MARK} (3): receive the next envelopes of `queues` from your storage")
{%- else %}

    async def receive(self, queues: Sequence[str], limit: int, wait: float) -> Sequence[Delivery[Any]]:
        """Claim with :meth:`claim`, polling every ``poll_interval`` at most{% if cookiecutter.wakeups == "notifications" %} (sooner when notified){% endif %}."""
        return await poll_receive(lambda n: self.claim(queues, n), limit, wait, interval=self.config.poll_interval,
                                  {% if cookiecutter.wakeups == "notifications" %}wakeup=self.wakeup, {% endif %}stop=self.stopping)

    async def claim(self, queues: Sequence[str], limit: int) -> Sequence[Delivery[Any]]:
        """Marker (3): atomically claim up to ``limit`` due jobs of ``queues`` (counting an attempt), or none."""
        raise NotImplementedError(f"{_MARK} (3): receive the next envelopes of `queues` from your storage")
{%- endif %}

    async def ack(self, deliveries: Sequence[Delivery[Any]]) -> None:
        """Marker (4): these jobs (one queue) succeeded: delete them."""
        raise NotImplementedError(f"{_MARK} (4): acknowledge a success")

    async def retry(self, delivery: Delivery[Any], delay: float, error: str) -> None:
        """Marker (5): make the job due again in ``delay`` seconds (its attempt stays counted)."""
        raise NotImplementedError(f"{_MARK} (5): retry a failure after its backoff")

    async def dead_letter(self, delivery: Delivery[Any], error: str) -> None:
        """Marker (6): keep the job as a dead letter with ``error`` and ``delivery.attempt``."""
        raise NotImplementedError(f"{_MARK} (6): dead-letter a failure")

    async def give_back(self, deliveries: Sequence[Delivery[Any]]) -> None:
        """Marker (7): the worker stopped mid-job: make these due now, refunding the attempt."""
        raise NotImplementedError(f"{_MARK} (7): give back an interrupted job")
{%- if LEASES %}

    async def extend_leases(self, deliveries: Sequence[Delivery[Any]]) -> None:
        """Marker (8): push the lease deadline of these running jobs ``visibility_timeout`` seconds ahead."""
        raise NotImplementedError(f"{_MARK} (8): extend the leases of running jobs")
{%- endif %}
