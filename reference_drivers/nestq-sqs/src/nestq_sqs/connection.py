"""The producer side: :class:`SqsConnection`, the driver's ``JobProducer``, and the SQS client both sides share."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)
from nestq_spec import ConfigError, JobProducer, JSONValue, NestqError, encode_job, redact, validate_queue_name

from .config import MAX_DELAY_SECONDS, SqsConfig
from .wire import ATTEMPTS, JOB_ID, check_size, encode_body, sqs_names

__all__ = ["SqsConnection", "SqsError", "describe_client_error", "shared_session"]

_RETENTION = str(14 * 24 * 60 * 60)  # the longest SQS keeps a message: dead letters wait for an operator

_loader: Any = None
_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AioSession] = weakref.WeakKeyDictionary()


def shared_session() -> AioSession:
    """The aiobotocore session of the running event loop, one per loop, every one reading one botocore loader.

    A new session parses SQS's service model and the endpoint rules again: about 0.1 s of CPU per client, paid by
    every app that boots. The loader keeps what it parsed; the session keeps the resolved client class. One session
    per loop, not per process, because a session's credential refresh may hold asyncio locks of the loop it ran on.
    """
    global _loader
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None:
        session = get_session()
        if _loader is None:
            _loader = session.get_component("data_loader")
        else:
            session.register_component("data_loader", _loader)
        _sessions[loop] = session
    return session


class SqsError(NestqError):
    """An SQS call failed; the message names the call, the endpoint (without secrets) and SQS's own error."""


def describe_client_error(exc: BaseException) -> str:
    """A short text for an SQS or connection failure (botocore's messages never carry the credentials)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


class SqsConnection(JobProducer):
    """Pushes envelopes to SQS; the container closes it (``aclose``) when the app shuts down.

    One SQS queue per nestq queue (see :mod:`nestq_sqs.wire` for the names), created on first use with its
    dead-letter queue and a redrive policy of ``max_attempts`` receives.
    """

    def __init__(self, config: SqsConfig) -> None:
        self.config = config
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._connecting = asyncio.Lock()
        self._urls: dict[str, tuple[str, str]] = {}
        self._creating: dict[str, asyncio.Future[tuple[str, str]]] = {}

    @property
    def where(self) -> str:
        """The endpoint for messages: the configured URL (redacted), or the region's AWS endpoint."""
        return redact(self.config.endpoint_url, as_repr=False) if self.config.endpoint_url else (
            f"SQS in {self.config.region or 'the AWS chain region'}")

    async def client(self) -> Any:
        """The aiobotocore SQS client, created on first use (inside the event loop that uses it)."""
        if self._client is None:
            async with self._connecting:
                if self._client is None:
                    self._client = await self.connect()
        return self._client

    async def connect(self) -> Any:
        """Open an SQS client for ``self.config`` (credentials from the AWS chain)."""
        config = self.config
        aio = AioConfig(
            connect_timeout=config.connect_timeout,
            # A long poll holds the response for receive_wait seconds: the read timeout must outlast it.
            read_timeout=config.receive_wait + max(5.0, config.connect_timeout),
            retries={"max_attempts": config.call_attempts, "mode": "standard"},
            max_pool_connections=max(10, min(100, config.concurrency + 4)),
        )
        stack = contextlib.AsyncExitStack()
        try:
            client = await stack.enter_async_context(shared_session().create_client(
                "sqs", region_name=config.region or None, endpoint_url=config.endpoint_url or None, config=aio))
        except NoRegionError:
            await stack.aclose()
            raise ConfigError(
                "no AWS region for SQS: set NESTQ_SQS__REGION (or AWS_REGION / AWS_DEFAULT_REGION, or a region in "
                "the AWS profile)"
            ) from None
        except (BotoCoreError, ValueError) as exc:
            await stack.aclose()
            raise ConfigError(f"cannot create an SQS client for {self.where}: {describe_client_error(exc)}") from None
        self._stack = stack
        return client

    async def aclose(self) -> None:
        """Close the client (conformance rule LIF-009 checks that nothing stays open)."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def call(self, operation: str, **kwargs: Any) -> Any:
        """Run one SQS API call; a failure raises :class:`SqsError` naming the call and the endpoint."""
        client = await self.client()
        try:
            return await getattr(client, operation)(**kwargs)
        except NoCredentialsError:
            raise SqsError(
                f"{operation} on {self.where}: no AWS credentials found (environment, profile, shared files or "
                "role); the AWS chain gives them, nestq never stores them"
            ) from None
        except EndpointConnectionError as exc:
            raise SqsError(f"{operation}: cannot reach {self.where}: {exc.kwargs.get('error', exc)}") from None
        except (ClientError, BotoCoreError) as exc:
            raise SqsError(f"{operation} on {self.where} failed: {describe_client_error(exc)}") from exc

    # ---------------------------------------------------------------------------------------------- queues

    async def queue_urls(self, queue: str) -> tuple[str, str]:
        """The URLs of ``queue``'s SQS queue and dead-letter queue, created (idempotently) on first use."""
        known = self._urls.get(queue)
        if known is not None:
            return known
        pending = self._creating.get(queue)
        if pending is None:
            pending = self._creating[queue] = asyncio.ensure_future(self._create(queue))
        try:
            urls = await asyncio.shield(pending)
        finally:
            if pending.done():
                self._creating.pop(queue, None)
        self._urls[queue] = urls
        return urls

    async def _create(self, queue: str) -> tuple[str, str]:
        name, dlq_name = sqs_names(self.config.queue_prefix, queue, fifo=self.config.fifo)
        fifo = {"FifoQueue": "true"} if self.config.fifo else {}
        dlq = await self.call("create_queue", QueueName=dlq_name,
                              Attributes={**fifo, "MessageRetentionPeriod": _RETENTION})
        arn = await self.call("get_queue_attributes", QueueUrl=dlq["QueueUrl"], AttributeNames=["QueueArn"])
        main = await self.call("create_queue", QueueName=name, Attributes=fifo)
        # Set apart from CreateQueue so that a second process with another max_attempts does not fail with
        # QueueAlreadyExists; the redrive policy is a backstop for jobs whose worker died on every attempt.
        policy = json.dumps({"deadLetterTargetArn": arn["Attributes"]["QueueArn"],
                             "maxReceiveCount": str(self.config.max_attempts)})
        await self.call("set_queue_attributes", QueueUrl=main["QueueUrl"], Attributes={"RedrivePolicy": policy})
        return str(main["QueueUrl"]), str(dlq["QueueUrl"])

    def fifo_fields(self, queue: str, group: str | None = None) -> dict[str, str]:
        """The FIFO send fields: the message group (default: one group per nestq queue) and a fresh dedup id."""
        if not self.config.fifo:
            if group is not None:
                raise ValueError("message groups need FIFO queues (NESTQ_SQS__FIFO=true)")
            return {}
        # Every push is a distinct job, even with an identical payload: never let SQS deduplicate them.
        return {"MessageGroupId": group or queue, "MessageDeduplicationId": uuid.uuid4().hex}

    # ---------------------------------------------------------------------------------------------- pushing

    async def push_json(self, queue: str, payload: JSONValue) -> None:
        """Wrap ``payload`` once (``{"v": 1, "payload": ...}``) and store it on ``queue``."""
        await self.push_raw(queue, encode_job(queue, payload))

    async def push_raw(
        self, queue: str, data: bytes, *, delay: float = 0.0, group: str | None = None, attempts: int = 0,
        job_id: str | None = None,
    ) -> str:
        """Store ``data`` (the encoded envelope, bytes, unchanged) on ``queue``; return the SQS message id.

        ``delay`` (seconds, rounded up, at most 900: SQS's limit) makes it due later; ``group`` is its FIFO message
        group. ``attempts`` and ``job_id`` are for re-sending a job that already ran.
        """
        validate_queue_name(queue)
        body, attributes = encode_body(data)
        if attempts:
            attributes[ATTEMPTS] = {"DataType": "Number", "StringValue": str(attempts)}
        if job_id is not None:
            attributes[JOB_ID] = {"DataType": "String", "StringValue": job_id}
        check_size(queue, data, body, attributes)
        extra = self._delay(delay) | self.fifo_fields(queue, group)
        url, _ = await self.queue_urls(queue)
        sent = await self.call("send_message", QueueUrl=url, MessageBody=body, MessageAttributes=attributes, **extra)
        return str(sent["MessageId"])

    async def push_delayed_json(self, queue: str, payload: JSONValue, delay: float) -> str:
        """Push ``payload`` to be delivered ``delay`` seconds from now (at most 900 s, standard queues only)."""
        return await self.push_raw(queue, encode_job(queue, payload), delay=delay)

    async def push_many_json(self, queue: str, payloads: Sequence[JSONValue], *, group: str | None = None) -> list[str]:
        """Push many payloads with ``SendMessageBatch`` (10 per call); return their message ids in order.

        Every payload is encoded and checked before anything is sent. A call that fails part-way raises
        :class:`SqsError` naming how many were sent; the ones before it are stored.
        """
        validate_queue_name(queue)
        entries: list[dict[str, Any]] = []
        for index, payload in enumerate(payloads):
            data = encode_job(queue, payload)
            body, attributes = encode_body(data)
            check_size(queue, data, body, attributes)
            entries.append({"Id": str(index), "MessageBody": body, "MessageAttributes": attributes,
                            **self.fifo_fields(queue, group)})
        url, _ = await self.queue_urls(queue)
        ids: list[str] = []
        for chunk in _batches(entries):
            sent = await self.call("send_message_batch", QueueUrl=url, Entries=chunk)
            if sent.get("Failed"):
                first = sent["Failed"][0]
                raise SqsError(
                    f"SendMessageBatch on {self.where}: {len(sent['Failed'])} of {len(chunk)} messages refused "
                    f"({first.get('Code')}: {first.get('Message', '')}); {len(ids)} earlier ones were stored"
                )
            by_id = {entry["Id"]: entry["MessageId"] for entry in sent.get("Successful", [])}
            ids.extend(str(by_id[entry["Id"]]) for entry in chunk)
        return ids

    def _delay(self, delay: float) -> dict[str, int]:
        if delay < 0 or math.isnan(delay):
            raise ValueError(f"delay must be >= 0 seconds, found {delay!r}")
        if delay == 0:
            return {}
        if self.config.fifo:
            raise ValueError("FIFO queues have no per-message delay (SQS only delays a whole FIFO queue)")
        if delay > MAX_DELAY_SECONDS:
            raise ValueError(
                f"delay {delay:g}s is over SQS's limit of {MAX_DELAY_SECONDS} s (15 minutes) for one message; keep "
                "longer schedules outside the queue and push when due"
            )
        return {"DelaySeconds": math.ceil(delay)}


def _batches(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split into SendMessageBatch calls: at most 10 entries and 256 KiB of bodies per call."""
    out: list[list[dict[str, Any]]] = []
    size = 0
    for entry in entries:
        entry_size = len(entry["MessageBody"].encode("utf-8")) + 512
        if not out or len(out[-1]) == 10 or size + entry_size > 256 * 1024:
            out.append([])
            size = 0
        out[-1].append(entry)
        size += entry_size
    return out
