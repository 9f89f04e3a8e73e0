"""Bug: the producer wraps the payload in the envelope twice, so handlers receive {"v": 1, "payload": ...}."""

from nestq_memory import MemoryConnection

from nestq_spec import JSONValue, encode_job, wrap

from ._base import broken_harness


class DoubleWrapping(MemoryConnection):
    async def push_json(self, queue: str, payload: JSONValue, *, delay: float = 0.0, priority: int = 0) -> None:
        data = encode_job(queue, wrap(payload))  # the bug: encode_job wraps already
        self.broker.push(queue, data, delay=delay, priority=priority)


harness = broken_harness("double_wrap", connection=DoubleWrapping)
