"""Bug: the worker cuts its running handlers off as soon as it is cancelled, ignoring the shutdown grace."""

import dataclasses

from nestq_memory import MemoryBroker, MemoryConfig

from ._base import BrokenWorker, broken_harness


class Graceless(BrokenWorker):
    def __init__(self, broker: MemoryBroker, config: MemoryConfig) -> None:
        super().__init__(broker, dataclasses.replace(config, shutdown_grace=0.0))  # the bug: the grace is dropped


harness = broken_harness("no_grace", worker=Graceless)
