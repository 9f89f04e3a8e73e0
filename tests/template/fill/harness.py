"""The filled driver's harness: what the in-process storage supports, and its probes (a patch, like the others)."""

from __future__ import annotations

from nestq_conformance.capabilities import Capabilities
from nestq_conformance.harness import DeadLetterInfo, DriverHarness, SuiteSettings
from nestq_fill.connection import FillConnection

from nestq_spec import Container


class FillHarness(DriverHarness):
    capabilities = Capabilities(
        durability="ephemeral",
        delivery="at-least-once",
        ordering="fifo",
        retries=True,
        max_attempts=SuiteSettings().max_attempts,
        backoff=True,
        dead_letters=True,
        max_concurrency=True,
    )

    async def dead_letters(self, container: Container, queue: str) -> list[DeadLetterInfo]:
        """The dead letters of ``queue``, oldest first."""
        letters = container.get(FillConnection).store.dead_letters(queue)
        return [DeadLetterInfo(d.data, d.error, d.attempts, d.job_id) for d in letters]

    async def queue_depth(self, container: Container, queue: str) -> int:
        """Ready, delayed and running jobs of ``queue``."""
        return container.get(FillConnection).store.depth(queue)
