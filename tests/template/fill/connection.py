"""Marker (2) of the template, filled: a patch for ``src/nestq_fill/connection.py``.

Each member of the class below replaces the member of the same name in the rendered class (see
``tests/template/filling.py``); imports are added to the rendered module. Rendered with technology ``fill``, so
the names match.
"""

from __future__ import annotations

from nestq_fill.config import FillConfig
from nestq_fill.store import queues_for

from nestq_spec import JobProducer, validate_queue_name


class FillConnection(JobProducer):
    def __init__(self, config: FillConfig) -> None:
        self.config = config
        self.store = queues_for(config.url)

    async def push_raw(self, queue: str, data: bytes) -> None:
        """Store ``data`` on ``queue`` exactly as given: the producer's one write to the storage."""
        validate_queue_name(queue)
        self.store.push(queue, data)
