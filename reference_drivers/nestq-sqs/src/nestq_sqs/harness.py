"""The conformance harness, entry point ``sqs`` in ``nestq.drivers``.

``pytest`` in this project, or ``nestq check sqs``, runs the conformance suite against it. By default it starts
an SQS-compatible server (``moto``'s SQS backend, :class:`~nestq_sqs.embedded.EmbeddedSqs`) on a free loopback
port and signs with dummy credentials, so the suite needs no AWS account and no network. With
``NESTQ_SQS__ENDPOINT_URL`` set it uses that endpoint instead (and the AWS chain's credentials), refusing one that
is not on this machine unless ``NESTQ_SUITE_ALLOW_REMOTE=1``: a shell variable left pointing at production must not
receive test jobs. Set ``NESTQ_SQS__FIFO=true`` to run the suite on FIFO queues, where the rules of
:data:`FIFO_EXPECTED_FAILURES` are expected to fail (for what FIFO message groups are).
"""

from __future__ import annotations

import ipaddress
import os
import uuid
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

from nestq_conformance.capabilities import Capabilities
from nestq_conformance.harness import DeadLetterInfo, DriverHarness, SuiteSettings
from nestq_spec import Container, JSONValue, ModuleLike, env_var, redact

from .admin import SqsAdmin
from .config import SqsConfig, load_config
from .connection import SqsConnection
from .embedded import DUMMY_CREDENTIALS, EmbeddedSqs
from .module import SqsQueueModule, SqsQueueWorkerModule
from .wire import MAX_PAYLOAD_BYTES

__all__ = ["FIFO_EXPECTED_FAILURES", "SqsHarness", "harness"]

_REGION = "us-east-1"


_GROUPS = ("on a FIFO queue no message of a group is handed out while an earlier one of the group is in flight "
           "(received, not yet deleted), and the driver puts all of a nestq queue's jobs in one group to keep their "
           "order")
FIFO_EXPECTED_FAILURES: Mapping[str, str] = {
    "DLV-003": f"the rule holds jobs of two queues and waits for 3 of them running at once: {_GROUPS}, so each queue "
    "runs one held job at a time",
    "DLV-004": f"the rule pushes 3 jobs to one queue and holds them, waiting for 3 running at once: {_GROUPS}, so the "
    "first held job keeps the other two back",
    "DUR-006": f"the rule fills every slot of a worker with held jobs of one queue: {_GROUPS}, so the slots never fill",
    "FLR-009": f"a failing job is retried in place (its visibility changed to the backoff): {_GROUPS}, so each raising "
    "job holds the good jobs behind it until its retries end, past the rule's deadline",
}
"""The rules that cannot pass on FIFO queues (``NESTQ_SQS__FIFO=true``), each for what FIFO groups are."""


class SqsHarness(DriverHarness):
    """Runs the conformance suite against the driver, on the embedded server or ``NESTQ_SQS__ENDPOINT_URL``."""

    name = "sqs"
    settings_class = SqsConfig

    def __init__(self) -> None:
        self._address: str | None = None
        self._origin = ""
        self._server: EmbeddedSqs | None = None
        config = load_config()
        # One prefix per run (a worker subprocess gets it through subprocess_env): queues of an earlier run on a
        # long-lived endpoint never mix with this one's.
        given = os.environ.get(env_var(SqsConfig, "queue_prefix"))
        self._prefix = given if given else f"nq{uuid.uuid4().hex[:6]}-"
        self._region = config.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or _REGION
        self._fifo = config.fifo
        self.expected_failures = FIFO_EXPECTED_FAILURES if self._fifo else {}
        # What SQS gives: at-least-once with leases, retries, dead letters; FIFO queues add ordering, drop delays.
        self.capabilities = Capabilities(
            durability="durable",
            delivery="at-least-once",
            ordering="fifo" if self._fifo else "none",
            retries=True,
            max_attempts=3,
            backoff=True,
            dead_letters=True,
            visibility_timeout=True,
            delayed_jobs=not self._fifo,
            cross_process=True,
            max_payload_bytes=MAX_PAYLOAD_BYTES,
            max_concurrency=True,
        )

    @property
    def address(self) -> str:
        """The endpoint the suite uses, chosen once; see :meth:`describe` for where it came from."""
        if self._address is None:
            variable = env_var(SqsConfig, "endpoint_url")
            given = load_config().endpoint_url
            if given:
                self._address, self._origin = given, f"from {variable}"
                host = urlsplit(given).hostname or "localhost"
                if not _is_local(host) and os.environ.get("NESTQ_SUITE_ALLOW_REMOTE") != "1":
                    raise RuntimeError(
                        f"the suite would write test jobs to {host!r} ({self._origin}), not on this machine; set "
                        "NESTQ_SUITE_ALLOW_REMOTE=1 if that endpoint is meant for tests"
                    )
            else:
                self._server = EmbeddedSqs().start()
                # moto accepts any credentials; the client still needs some from the AWS chain to sign with.
                os.environ.update(DUMMY_CREDENTIALS)
                self._address, self._origin = self._server.url, f"embedded moto server ({variable} unset)"
        return self._address

    def describe(self) -> str:
        """The report header's line: the endpoint the suite runs on, and where that choice came from."""
        kind = "FIFO queues" if self._fifo else "standard queues"
        if self._address is None and not load_config().endpoint_url:
            # Describing must not start the embedded server: nothing would stop it when no rule runs.
            return f"sqs: the embedded moto server, started with the session ({kind})"
        return f"sqs: {redact(self.address)} ({self._origin}), {kind}"

    def session_start(self) -> None:
        """Start the embedded server now rather than inside the first rule's deadline."""
        _ = self.address

    def session_end(self) -> None:
        """Stop the embedded server (never an endpoint given in the environment)."""
        if self._server is not None:
            self._server.stop()
            self._server = None
            self._address = None

    def _pinned(self, settings: SuiteSettings) -> dict[str, object]:
        return {
            "endpoint_url": self.address,
            "region": self._region,
            "queue_prefix": self._prefix,
            "fifo": self._fifo,
            "receive_wait": 1,
            "concurrency": settings.concurrency,
            "max_attempts": settings.max_attempts,
            "backoff_base": settings.backoff,
            "backoff_cap": max(settings.backoff_cap, settings.backoff),
            "shutdown_grace": settings.shutdown_grace,
            "visibility_timeout": settings.visibility_timeout,
            "heartbeat_interval": settings.heartbeat_interval,
        }

    def producer_module(self, settings: SuiteSettings) -> ModuleLike:
        """``SqsQueueModule.for_root`` with the suite's settings."""
        return SqsQueueModule.for_root(self._pinned(settings))

    def worker_module(self, settings: SuiteSettings) -> ModuleLike:
        """``SqsQueueWorkerModule`` (its settings come with the producer module)."""
        return SqsQueueWorkerModule

    def configured_module(self, pinned: Mapping[str, object]) -> ModuleLike:
        """The producer module as an app boots it, with only ``pinned`` pinned."""
        return SqsQueueModule.for_root(dict(pinned))

    def live_settings(self, container: Container) -> object:
        """The settings object the booted driver uses."""
        return container.get(SqsConfig)

    def subprocess_env(self) -> dict[str, str]:
        """What a worker in another process needs to reach the same endpoint (``cross_process``)."""
        env = {
            env_var(SqsConfig, "endpoint_url"): self.address,
            env_var(SqsConfig, "region"): self._region,
            env_var(SqsConfig, "queue_prefix"): self._prefix,
            env_var(SqsConfig, "fifo"): str(self._fifo).lower(),
        }
        if self._server is not None:
            env.update(DUMMY_CREDENTIALS)
        return env

    async def push_raw(self, container: Container, queue: str, data: bytes) -> None:
        """Store ``data`` as it is, bypassing the envelope: how the suite plants malformed envelopes."""
        await container.get(SqsConnection).push_raw(queue, data)

    async def push_delayed(self, container: Container, queue: str, payload: object, delay: float) -> None:
        """Push with SQS's per-message delay (standard queues)."""
        await container.get(SqsConnection).push_delayed_json(queue, cast(JSONValue, payload), delay)

    async def dead_letters(self, container: Container, queue: str) -> list[DeadLetterInfo]:
        """The queue's dead-letter queue, read through the operator API."""
        letters = await SqsAdmin(container.get(SqsConnection)).dead_letters(queue, limit=10_000)
        return [DeadLetterInfo(letter.data, letter.error, letter.attempts, letter.job_id) for letter in letters]

    async def queue_depth(self, container: Container, queue: str) -> int:
        """Messages waiting, in flight and delayed (SQS's approximate counts; exact on moto)."""
        depth = await SqsAdmin(container.get(SqsConnection)).depth(queue)
        return depth["waiting"] + depth["in_flight"] + depth["delayed"]


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


harness = SqsHarness()
"""The instance the ``sqs`` entry point names."""
