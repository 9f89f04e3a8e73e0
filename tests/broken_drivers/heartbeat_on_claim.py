"""Bug: the Redis worker heartbeats only when it has a free slot (its heartbeat rides on the claim loop).

With every slot busy on long jobs, no lease is extended: they expire while the worker is alive and working, and
another worker runs the same jobs again. Built on the Redis driver's worker (its ``extend_leases`` primitive).
"""

from collections.abc import Sequence

from nestq_conformance.harness import SuiteSettings
from nestq_redis import RedisConnection
from nestq_redis.config import RedisConfig
from nestq_redis.harness import RedisHarness
from nestq_redis.worker import Lease, RedisWorker

from nestq_spec import Container, ContainerBuilder, Module, ModuleLike, TransportContribution
from nestq_spec.driverkit import Delivery


class ClaimBoundWorker(RedisWorker):
    async def extend_leases(self, deliveries: Sequence[Delivery[Lease]]) -> None:
        if self.busy >= self.concurrency:
            return  # the bug: no free slot, no trip through the claim loop, no heartbeat
        await super().extend_leases(deliveries)


def _build(container: Container) -> ClaimBoundWorker:
    return ClaimBoundWorker(container.get(RedisConnection), container.get(RedisConfig))


class _WorkerModule(Module):
    @classmethod
    def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
        return builder.provide_meta(TransportContribution("ClaimBoundWorker", _build))


class ClaimBoundHarness(RedisHarness):
    """The Redis driver's harness with the broken worker."""

    def worker_module(self, settings: SuiteSettings) -> ModuleLike:
        return _WorkerModule


harness = ClaimBoundHarness()
