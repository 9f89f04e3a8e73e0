"""Bug: push_json accepts a delay and ignores it: a delayed job is due at once."""

from nestq_memory import MemoryConnection

from nestq_spec import JSONValue

from ._base import broken_harness


class Hasty(MemoryConnection):
    async def push_json(self, queue: str, payload: JSONValue, *, delay: float = 0.0, priority: int = 0) -> None:
        await super().push_json(queue, payload, priority=priority)  # the bug: `delay` is dropped


harness = broken_harness("ignore_delay", connection=Hasty)
