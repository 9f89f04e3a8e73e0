"""The producer side: :class:`SqsConnection`, the driver's ``JobProducer`` (markers (1) and (2))."""

from __future__ import annotations

from typing import Any

from nestq_spec import JobProducer, JSONValue, encode_job

from .config import SqsConfig

__all__ = ["SqsConnection"]

_MARK = "src/nestq_sqs/connection.py marker"


class SqsConnection(JobProducer):
    """Pushes envelopes to the storage; the container closes it (``aclose``) when the app shuts down."""

    def __init__(self, config: SqsConfig) -> None:
        self.config = config
        self._client: Any = None

    async def client(self) -> Any:
        """The storage client, connected on first use (inside the event loop that uses it)."""
        if self._client is None:
            self._client = await self.connect()
        return self._client

    async def connect(self) -> Any:
        """Marker (1): open a client to the storage described by ``self.config``, and create what it needs."""
        raise NotImplementedError(f"{_MARK} (1): connect to your storage")

    async def disconnect(self, client: Any) -> None:
        """Close ``client`` (what :meth:`connect` returned); filled together with marker (1)."""

    async def aclose(self) -> None:
        """Close the client (conformance rule LIF-009 checks that nothing stays open)."""
        client, self._client = self._client, None
        if client is not None:
            await self.disconnect(client)

    async def push_json(self, queue: str, payload: JSONValue) -> None:
        """Wrap ``payload`` once (``{"v": 1, "payload": ...}``) and store it on ``queue``."""
        await self.push_raw(queue, encode_job(queue, payload))

    async def push_raw(self, queue: str, data: bytes) -> None:
        """Marker (2): store ``data`` (the encoded envelope, bytes, unchanged) on ``queue``."""
        raise NotImplementedError(f"{_MARK} (2): push `data` (the encoded envelope, bytes) onto your storage")
