"""nestq_spec.driverkit: the parts every driver would otherwise re-implement, written once and shared.

- :class:`QueueWorker`: a ``Transport`` that owns the receive loop, the concurrency bound, cancel and shutdown
  grace, dispatch in the job context, unwinding, error text and outcome bookkeeping. A driver subclasses it and
  supplies storage primitives only: ``receive``, ``ack``, ``retry``, ``dead_letter``, ``give_back`` and, for
  lease-based storages, ``extend_leases``.
- :class:`LeaseKeeper`, :func:`check_heartbeat`, :func:`check_grace`: heartbeats for leased jobs and the
  settings checks that go with them.
- :class:`RetryPolicy`: attempts, exponential backoff with a cap and jitter, the dead-letter decision.
- :func:`poll_receive` and :class:`Wakeup`: receiving from a storage without a blocking pop.

The toolkit is optional: a driver may implement :class:`~nestq_spec.Transport` directly, and the conformance
suite judges both the same way.
"""

from nestq_spec.driverkit.lease import LeaseKeeper, check_grace, check_heartbeat
from nestq_spec.driverkit.poll import Wakeup, poll_receive
from nestq_spec.driverkit.retry import MAX_ERROR_CHARS, Decision, RetryPolicy, describe_error
from nestq_spec.driverkit.worker import Delivery, QueueWorker

__all__ = [
    "MAX_ERROR_CHARS",
    "Decision",
    "Delivery",
    "LeaseKeeper",
    "QueueWorker",
    "RetryPolicy",
    "Wakeup",
    "check_grace",
    "check_heartbeat",
    "describe_error",
    "poll_receive",
]
