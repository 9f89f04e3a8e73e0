"""Bug: the Redis worker heartbeats only when it has a free slot (its heartbeat rides on the claim loop).

With every slot busy on long jobs, no lease is extended: they expire while the worker is alive and working, and
another worker runs the same jobs again. Built on the Redis driver's worker internals (``_Run``).
"""

import contextlib

from nestq_conformance.harness import SuiteSettings
from nestq_redis import RedisConnection
from nestq_redis.config import RedisConfig
from nestq_redis.harness import RedisHarness
from nestq_redis.store import RedisQueueStore
from nestq_redis.worker import STORAGE_ERRORS, RedisWorker, _Run

from nestq_spec import CancellationToken, Container, ContainerBuilder, Module, ModuleLike, TransportContribution, routes


class _ClaimBoundRun(_Run):
    async def _heartbeat_loop(self) -> None:
        while not self.closing.is_set():
            await self._pause(self.config.effective_heartbeat())
            if self.closing.is_set():
                return
            if self.free <= 0:
                continue  # the bug: no free slot, no trip through the claim loop, no heartbeat
            with contextlib.suppress(*STORAGE_ERRORS):
                for queue in self.queues:
                    await self._heartbeat(queue)


class ClaimBoundWorker(RedisWorker):
    async def serve(self, container: Container, cancel: CancellationToken) -> None:
        table = routes(container)
        if not table:
            await cancel.wait()
            return
        client = self.connection.new_client()
        try:
            store = RedisQueueStore(client, prefix=self.config.key_prefix)
            await _ClaimBoundRun(self.config, store, container, table).serve(cancel)
        finally:
            with contextlib.suppress(*STORAGE_ERRORS, RuntimeError):
                await client.aclose()


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
