"""The memory driver's ``push_many_json`` (the batch method ``nestq bench`` looks for)."""

from __future__ import annotations

import asyncio

import pytest
from nestq_memory import MemoryBroker, MemoryConfig, MemoryConnection

from nestq_spec import unwrap


def _drain(broker: MemoryBroker, queue: str) -> list[object]:
    out = []
    while (job := broker.claim([queue])) is not None:
        out.append(unwrap(job.data))
        broker.ack(job)
    return out


def test_push_many_json_stores_in_order_and_returns_the_ids() -> None:
    broker = MemoryBroker()
    conn = MemoryConnection(broker, MemoryConfig())
    ids = asyncio.run(conn.push_many_json("batch", [{"n": i} for i in range(5)]))
    assert len(ids) == len(set(ids)) == 5
    assert broker.stats("batch").ready == 5
    assert _drain(broker, "batch") == [{"n": i} for i in range(5)]
    assert asyncio.run(conn.push_many_json("batch", [])) == []


def test_push_many_json_checks_everything_before_storing_anything() -> None:
    broker = MemoryBroker()
    conn = MemoryConnection(broker, MemoryConfig())
    with pytest.raises(TypeError):
        asyncio.run(conn.push_many_json("batch", [{"n": 1}, {"n": object()}]))  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="delay must be"):
        asyncio.run(conn.push_many_json("batch", [{"n": 1}], delay=-1))
    assert broker.stats("batch").ready == 0


def test_push_many_json_takes_priority_and_delay() -> None:
    broker = MemoryBroker()
    conn = MemoryConnection(broker, MemoryConfig())
    asyncio.run(conn.push_many_json("batch", ["low"]))
    asyncio.run(conn.push_many_json("batch", ["high"], priority=5))
    asyncio.run(conn.push_many_json("batch", ["later"], delay=60))
    stats = broker.stats("batch")
    assert (stats.ready, stats.delayed) == (2, 1)
    assert _drain(broker, "batch") == ["high", "low"]
