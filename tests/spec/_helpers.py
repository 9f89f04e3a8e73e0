"""Helpers of the nestq_spec tests: a recording producer and deadline-bound waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from nestq_spec import JobProducer, JSONValue, encode_job


class RecordingProducer(JobProducer):
    """A driver's producer reduced to its storage: the bytes ``encode_job`` made, per queue."""

    def __init__(self) -> None:
        self.stored: list[tuple[str, bytes]] = []
        self.calls = 0

    async def push_json(self, queue: str, payload: JSONValue) -> None:
        self.calls += 1
        data = encode_job(queue, payload)
        self.stored.append((queue, data))


async def eventually(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll ``check`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


async def within(awaitable: Awaitable[object], what: str, timeout: float = 5.0) -> object:
    """Await with a deadline that names what was awaited."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None
