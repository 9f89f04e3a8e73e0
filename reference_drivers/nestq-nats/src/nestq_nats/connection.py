"""The producer side: :class:`NatsConnection`, the driver's ``JobProducer`` on a JetStream work-queue stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nestq_spec import ConfigError, JobProducer, JSONValue, NestqError, encode_job, env_var, redact

from .config import NatsConfig
from .layout import HEADER_JOB_ID, Layout

__all__ = ["NatsConnection", "NatsUnavailableError"]

log = logging.getLogger("nestq_nats")


class NatsUnavailableError(NestqError, ConnectionError):
    """The NATS server could not be reached (or JetStream is not enabled on it); the URL's password is masked."""


def _is_auth_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, nats.errors.AuthorizationError) or "authorization" in text or "authentication" in text


class NatsConnection(JobProducer):
    """Publishes envelopes to the jobs stream; the container closes it (``aclose``) when the app shuts down.

    The streams are created (or checked, when they exist) once per connection, before the first publish: a stream
    that exists with other retention or subjects is a :class:`ConfigError`, never reconfigured silently.
    """

    def __init__(self, config: NatsConfig) -> None:
        self.config = config
        self.layout = Layout(config.stream_prefix)
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._ready: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def display_url(self) -> str:
        """The server URL with its password masked."""
        return redact(self.config.url, as_repr=False)

    async def client(self) -> Client:
        """The NATS client, connected on first use (inside the event loop that uses it), streams checked."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    client = await self.connect()
                    try:
                        await self._ensure_streams(client.jetstream())
                    except BaseException:
                        await client.close()
                        raise
                    self._js = client.jetstream()
                    self._client = client
        return self._client

    async def jetstream(self) -> JetStreamContext:
        """The JetStream context of :meth:`client`."""
        await self.client()
        assert self._js is not None
        return self._js

    async def connect(self) -> Client:
        """Open a client to the server in ``self.config.url``; it reconnects by itself once connected.

        Raises :class:`ConfigError` when the server refuses the credentials and :class:`NatsUnavailableError` when
        it cannot be reached, each naming the URL with its password masked.
        """
        variable = env_var(NatsConfig, "url")

        seen: list[Exception] = []

        async def quiet(exc: Exception) -> None:
            # nats-py reports every failed (re)connect; keep them at debug, the worker logs what it could not do.
            seen.append(exc)
            log.debug("nats client (%s): %s", self.display_url, exc)

        try:
            # nats-py keeps retrying a first connection that fails; bound it and report the last reason.
            client = await asyncio.wait_for(
                nats.connect(servers=[self.config.url], name="nestq", connect_timeout=self.config.connect_timeout,
                             allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0.05,
                             error_cb=quiet),
                timeout=self.config.connect_timeout + 1.0,
            )
        except Exception as exc:
            cause = seen[-1] if seen and isinstance(exc, TimeoutError | nats.errors.NoServersError) else exc
            reason = f"{type(cause).__name__}: {redact(str(cause), as_repr=False)}".rstrip(": ")
            if any(_is_auth_error(e) for e in [exc, *seen]):
                raise ConfigError(
                    f"NATS at {self.display_url} refused the credentials ({variable}): {reason}"
                ) from None
            raise NatsUnavailableError(f"cannot reach NATS at {self.display_url} ({variable}): {reason}") from None
        await client.close()
        # Connected once, so the address and credentials are right: from now on a lost server is waited for.
        return await nats.connect(
            servers=[self.config.url],
            name="nestq",
            connect_timeout=self.config.connect_timeout,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.1,
            error_cb=quiet,
        )

    async def _ensure_streams(self, js: JetStreamContext) -> None:
        layout = self.layout
        await self._ensure_stream(
            js,
            StreamConfig(
                name=layout.jobs_stream,
                subjects=[layout.jobs_subjects],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                description="nestq jobs: one subject per queue, removed once acknowledged",
            ),
        )
        await self._ensure_stream(
            js,
            StreamConfig(
                name=layout.dead_stream,
                subjects=[layout.dead_subjects],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                description="nestq dead letters: kept with their error and attempts until redriven or purged",
            ),
        )

    async def _ensure_stream(self, js: JetStreamContext, wanted: StreamConfig) -> None:
        assert wanted.name is not None
        try:
            found = (await js.stream_info(wanted.name)).config
        except nats.js.errors.NotFoundError:
            try:
                await js.add_stream(wanted)
                return
            except nats.js.errors.BadRequestError:
                found = (await js.stream_info(wanted.name)).config  # another process created it meanwhile
        except nats.js.errors.ServiceUnavailableError:
            raise NatsUnavailableError(
                f"NATS at {self.display_url} has no JetStream (start nats-server with -js)"
            ) from None
        problems = []
        if found.retention != wanted.retention:
            problems.append(f"retention {_name(found.retention)} (nestq needs {_name(wanted.retention)})")
        if sorted(found.subjects or []) != sorted(wanted.subjects or []):
            problems.append(f"subjects {found.subjects} (nestq needs {wanted.subjects})")
        if problems:
            raise ConfigError(
                f"stream {wanted.name!r} on NATS at {self.display_url} exists with " + " and ".join(problems)
                + f"; nestq does not reconfigure it: delete it (nats stream rm {wanted.name}) or choose another "
                f"{env_var(NatsConfig, 'stream_prefix')}"
            )

    async def disconnect(self, client: Client) -> None:
        """Close ``client``: pending publishes are flushed first."""
        await client.close()

    async def aclose(self) -> None:
        """Close the client (conformance rule LIF-009 checks that nothing stays open)."""
        client, self._client, self._js = self._client, None, None
        if client is not None:
            await self.disconnect(client)

    async def push_json(self, queue: str, payload: JSONValue) -> None:
        """Wrap ``payload`` once (``{"v": 1, "payload": ...}``) and store it on ``queue``."""
        await self.push_raw(queue, encode_job(queue, payload))

    async def push_raw(self, queue: str, data: bytes, *, job_id: str | None = None) -> None:
        """Publish ``data`` (the encoded envelope, unchanged) on ``queue``'s subject; return once JetStream has it."""
        js = await self.jetstream()
        # Without an id the job's id is its sequence in the jobs stream (no header on the hot path).
        await js.publish(self.layout.subject(queue), data, headers={HEADER_JOB_ID: job_id} if job_id else None)

    async def push_many_json(self, queue: str, payloads: Sequence[JSONValue]) -> list[str]:
        """Push several jobs on ``queue`` with their publishes in flight together; return their job ids (sequences).

        Every payload is encoded (and checked) before anything is published. Each job is stored on its own: when
        one publish fails the error is raised after the others finished, and those others are stored.
        """
        encoded = [encode_job(queue, payload) for payload in payloads]
        js = await self.jetstream()
        subject = self.layout.subject(queue)
        results = await asyncio.gather(*(js.publish(subject, data) for data in encoded), return_exceptions=True)
        ids = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            ids.append(str(result.seq))
        return ids


def _name(value: Any) -> str:
    return str(getattr(value, "value", value))
