"""The two binaries of the example, shaped like the seed's ``module.rs``.

``app.py`` runs on the in-test fake driver, ``app_memory.py`` on the reference memory driver; the two files differ
in the one line that names the driver.
"""

from __future__ import annotations

from nestq_spec import module
from tests.example_app.features import SignupsModule, WelcomeEmailsModule

# The one line that names the driver:
from nestq_memory import MemoryQueueModule as QueueModule, MemoryQueueWorkerModule as QueueWorkerModule  # isort: skip


@module(imports=[QueueModule.for_root(None), SignupsModule])
class ApiModule:
    """Producer-only: enqueues, never drains (no transport)."""


@module(imports=[QueueModule.for_root(None), QueueWorkerModule, WelcomeEmailsModule])
class WorkerModule:
    """Consumes too: the worker module contributes the transport, the feature module the processor."""
