"""Bug: the storage keeps numbers as doubles, so integers beyond 2**53 come back rounded (as in JavaScript)."""

import json

from nestq_memory import MemoryConnection

from nestq_spec import JSONValue, encode_job

from ._base import broken_harness


def _through_doubles(value: JSONValue) -> JSONValue:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) > 2**53:
        return int(float(value))  # the bug: the nearest double, not the integer
    if isinstance(value, list):
        return [_through_doubles(v) for v in value]
    if isinstance(value, dict):
        return {k: _through_doubles(v) for k, v in value.items()}
    return value


class DoubleStorage(MemoryConnection):
    async def push_json(self, queue: str, payload: JSONValue, *, delay: float = 0.0, priority: int = 0) -> None:
        data = encode_job(queue, payload)
        stored = encode_job(queue, _through_doubles(json.loads(data)["payload"]))
        self.broker.push(queue, stored, delay=delay, priority=priority)


harness = broken_harness("floaty_integers", connection=DoubleStorage)
