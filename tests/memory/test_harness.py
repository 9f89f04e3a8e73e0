"""The conformance harness: an honest, consistent manifest and working probes."""

from __future__ import annotations

import json

import pytest
from nestq_conformance.harness import SuiteSettings
from nestq_memory import MemoryConfig, MemoryConnection
from nestq_memory.harness import MemoryHarness, harness

from nestq_spec import Application, module

pytestmark = pytest.mark.asyncio


async def test_manifest() -> None:
    caps = harness.capabilities
    assert caps.problems() == []
    declared = {name for name in caps.as_dict() if caps.declared(name)}
    assert declared == {"delivery", "ordering", "retries", "max_attempts", "backoff", "dead_letters",
                        "delayed_jobs", "priority", "precise_delays", "max_payload_bytes", "max_concurrency"}
    assert caps.durability == "ephemeral"
    assert caps.max_attempts == MemoryConfig().max_attempts
    assert isinstance(harness, MemoryHarness)
    assert harness.settings_class is MemoryConfig


async def test_modules_pin_the_suite_settings_and_probes_work() -> None:
    settings = SuiteSettings(concurrency=2, max_attempts=4, backoff=0.3, backoff_cap=0.1, shutdown_grace=0.5)

    @module(imports=[harness.producer_module(settings), harness.worker_module(settings)])
    class App:
        pass

    app = Application.create(App)
    config = app.container.get(MemoryConfig)
    assert (config.concurrency, config.max_attempts, config.backoff_base, config.backoff_cap,
            config.shutdown_grace) == (2, 4, 0.3, 0.3, 0.5)
    assert [t.name for t in app.transports] == ["MemoryWorker"]
    c = app.container
    queue = "harness-probe-test"
    await harness.push_with_priority(c, queue, {"n": "low"}, 1)
    await harness.push_with_priority(c, queue, {"n": "high"}, 2)
    await harness.push_delayed(c, queue, {"n": "later"}, 60.0)
    await harness.push_raw(c, queue, b"raw")
    assert await harness.queue_depth(c, queue) == 4
    broker = c.get(MemoryConnection).broker
    job = broker.claim([queue])
    assert job is not None
    assert json.loads(job.data)["payload"] == {"n": "high"}
    broker.dead_letter(job, "E: x")
    letters = await harness.dead_letters(c, queue)
    assert [(d.error, d.attempts, d.job_id) for d in letters] == [("E: x", 1, job.job_id)]
    broker.purge(queue)
    broker.purge_dead_letters(queue)
