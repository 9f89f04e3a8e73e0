"""The producer side: what push_json stores, what it refuses, and the process-wide broker."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from nestq_memory import MemoryBroker, MemoryConnection, MemoryQueueModule, MemoryQueueWorkerModule, shared_broker

from nestq_spec import Application, BootError, JobProducer, JSONValue, QueueNameError, encode_job, module

from .conftest import Jobs, Journal, connection, eventually, producer_app, serving, worker_app

pytestmark = pytest.mark.asyncio


async def test_push_stores_the_encoded_envelope_not_the_object(broker: MemoryBroker) -> None:
    conn = connection(producer_app(broker))
    tags: list[JSONValue] = ["é", "€"]
    await conn.push_json("jobs", {"n": 1, "tags": tags})
    tags.append("changed after the push")
    job = broker.claim(["jobs"])
    assert job is not None
    assert isinstance(job.data, bytes)
    assert job.data == encode_job("jobs", {"n": 1, "tags": ["é", "€"]})
    assert json.loads(job.data) == {"v": 1, "payload": {"n": 1, "tags": ["é", "€"]}}


async def test_the_container_binds_job_producer_to_the_connection(broker: MemoryBroker) -> None:
    app = producer_app(broker)
    assert app.container.get(JobProducer) is connection(app)
    assert not app.transports


@pytest.mark.parametrize(
    ("queue", "payload", "options", "error"),
    [
        ("bad queue", {"n": 1}, {}, QueueNameError),
        ("jobs", {1, 2}, {}, TypeError),
        ("jobs", math.nan, {}, TypeError),
        ("jobs", {"n": 1}, {"delay": -1.0}, ValueError),
        ("jobs", {"n": 1}, {"delay": math.inf}, ValueError),
        ("jobs", {"n": 1}, {"delay": "soon"}, ValueError),
        ("jobs", {"n": 1}, {"priority": 1.5}, ValueError),
        ("jobs", {"n": 1}, {"priority": True}, ValueError),
    ],
)
async def test_bad_input_is_refused_before_anything_is_stored(
    broker: MemoryBroker, queue: str, payload: object, options: dict[str, object], error: type[Exception]
) -> None:
    conn = connection(producer_app(broker))
    with pytest.raises(error):
        await conn.push_json(queue, payload, **options)  # type: ignore[arg-type]
    assert broker.stats("jobs").depth == 0


async def test_push_raw_stores_bytes_as_they_are(broker: MemoryBroker) -> None:
    conn = connection(producer_app(broker))
    await conn.push_raw("jobs", b"not json at all")
    job = broker.claim(["jobs"])
    assert job is not None
    assert job.data == b"not json at all"
    with pytest.raises(TypeError):
        await conn.push_raw("jobs", "text")  # type: ignore[arg-type]


async def test_apps_of_one_process_share_the_default_broker(journal: Journal) -> None:
    # A producer-only app and a worker app booted separately, both on the process-wide broker.
    api = producer_app()
    assert connection(api).broker is shared_broker()
    await connection(api).push_json("jobs", {"n": "shared"})

    @module(imports=[MemoryQueueModule.for_root(), MemoryQueueWorkerModule], providers=[Jobs])
    class Worker:
        pass

    async with serving(Application.create(Worker)):
        await eventually(lambda: journal.done() == [{"n": "shared"}], "the job pushed by the other app")
    assert shared_broker().depth("jobs") == 0


async def test_a_push_from_another_thread_wakes_an_idle_worker(broker: MemoryBroker, journal: Journal) -> None:
    async with serving(worker_app(broker)) as worker:
        await eventually(lambda: bool(broker._queues.get("jobs") and broker._queues["jobs"].waiters),
                         "the idle worker to wait for a push")

        def push_from_a_thread() -> None:
            asyncio.run(MemoryConnection(broker, worker.conn.config).push_json("jobs", {"n": "threaded"}))

        await asyncio.to_thread(push_from_a_thread)
        await eventually(lambda: journal.done() == [{"n": "threaded"}], "the job pushed from another thread")


async def test_the_worker_module_needs_the_producer_module() -> None:
    @module(imports=[MemoryQueueWorkerModule], providers=[Jobs])
    class Lonely:
        pass

    app = Application.create(Lonely)
    with pytest.raises(BootError, match=r"MemoryQueueModule\.for_root"):
        app.transports[0].build(app.container)


async def test_for_root_equality_decides_whether_two_imports_clash() -> None:
    own = MemoryBroker()
    assert MemoryQueueModule.for_root({"concurrency": 2}) == MemoryQueueModule.for_root({"concurrency": 2})
    assert MemoryQueueModule.for_root({"concurrency": 2}) != MemoryQueueModule.for_root({"concurrency": 3})
    assert MemoryQueueModule.for_root(broker=own) != MemoryQueueModule.for_root()
    assert "concurrency" in repr(MemoryQueueModule.for_root({"concurrency": 2}))
