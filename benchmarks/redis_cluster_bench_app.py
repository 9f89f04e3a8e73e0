"""The worker app of ``benchmarks/redis_cluster_bench.py``: one no-op handler on each of the 8 bench queues.

Run in 2 processes with ``nestq run redis_cluster_bench_app:BenchApp``; settings come from ``NESTQ_REDIS__*``
(a single server's URL or a ``redis+cluster://`` one). The handler does nothing, so the figure is the driver's.
"""

from __future__ import annotations

from typing import Any

from nestq_redis import RedisQueueModule, RedisQueueWorkerModule

from nestq_spec import module, process, processor

QUEUES = tuple(f"bench-{i}" for i in range(8))
"""The bench queues; their ``{queue}`` hash tags land on all three masters of a 3-master cluster."""


@processor
class BenchHandlers:
    """One no-op handler per bench queue."""

    @process(queue=QUEUES[0])
    async def q0(self, job: dict[str, Any]) -> None:
        """A bench job on queue 0."""

    @process(queue=QUEUES[1])
    async def q1(self, job: dict[str, Any]) -> None:
        """A bench job on queue 1."""

    @process(queue=QUEUES[2])
    async def q2(self, job: dict[str, Any]) -> None:
        """A bench job on queue 2."""

    @process(queue=QUEUES[3])
    async def q3(self, job: dict[str, Any]) -> None:
        """A bench job on queue 3."""

    @process(queue=QUEUES[4])
    async def q4(self, job: dict[str, Any]) -> None:
        """A bench job on queue 4."""

    @process(queue=QUEUES[5])
    async def q5(self, job: dict[str, Any]) -> None:
        """A bench job on queue 5."""

    @process(queue=QUEUES[6])
    async def q6(self, job: dict[str, Any]) -> None:
        """A bench job on queue 6."""

    @process(queue=QUEUES[7])
    async def q7(self, job: dict[str, Any]) -> None:
        """A bench job on queue 7."""


@module(imports=[RedisQueueModule.for_root(), RedisQueueWorkerModule], providers=[BenchHandlers])
class BenchApp:
    """A bench worker: the Redis driver (settings from the environment) and the 8 no-op handlers."""
