{%- set P = cookiecutter.__class_prefix -%}
"""The producer side: :class:`{{ P }}Connection`, the driver's ``JobProducer``.

Shaped like the seed's guide: ``push_json`` (1) wraps the payload in the wire envelope, which is done for
you, and (2) pushes the envelope onto your storage, which is yours to write, in
:meth:`{{ P }}Connection.push_raw`.
"""

from __future__ import annotations

from nestq_spec import JobProducer, JSONValue, encode_job, validate_queue_name

from .config import {{ P }}Config

__all__ = ["{{ P }}Connection"]


class {{ P }}Connection(JobProducer):
    """The driver's connection handle: the producer side of every queue.

    Apps ask the container for ``JobProducer`` and get this object; code that knows it runs on this driver
    may ask for ``{{ P }}Connection`` to reach the driver's own options (delays, priorities...)
    and operator API.
    """

    def __init__(self, config: {{ P }}Config) -> None:
        self.config = config
        # Your storage handle goes here, built from `config.url`: a client, a pool, a channel... Build it lazily or
        # in an async `connect()` if it binds to the running event loop (the container builds this object on first
        # use, inside the app's loop).

    async def push_json(self, queue: str, payload: JSONValue) -> None:
        """Wrap ``payload`` in the wire envelope exactly once and store it on ``queue``.

        Raises ``QueueNameError`` (bad queue name) or ``TypeError`` (payload not JSON) before anything is stored.
        """
        # (1) Wrap in the wire envelope {"v": 1, "payload": ...} and encode it to UTF-8 JSON bytes, exactly once:
        #     the queue name and the payload are checked here, before anything reaches the storage. Done.
        data = encode_job(queue, payload)
        # (2) Push the envelope onto your storage for `queue`: push_raw is the one place the producer writes.
        await self.push_raw(queue, data)

    async def push_raw(self, queue: str, data: bytes) -> None:
        """Store ``data`` on ``queue`` exactly as given: marker (2), the producer's one write to the storage.

        ``push_json`` calls it with an encoded envelope; the conformance harness calls it with malformed ones, to
        check that the worker refuses them. Store the bytes unchanged: the consumer decodes them.
        """
        validate_queue_name(queue)
        # (2) Your code: `await self.client.send_message(QueueUrl=..., MessageBody=data.decode())`, `RPUSH`,
        #     `Publish`, `INSERT INTO jobs (queue, body) VALUES (...)`... Raise on failure: a job that could not
        #     be stored must not look accepted.
        raise NotImplementedError(
            "src/{{ cookiecutter.package_name }}/connection.py marker (2): "
            "push `data` (the encoded envelope, bytes) onto your storage for `queue` "
            "in {{ P }}Connection.push_raw"
        )

    async def close(self) -> None:
        """Release the storage handle (connections, sockets); the default has nothing to release."""
