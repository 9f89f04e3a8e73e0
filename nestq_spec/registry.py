"""The consume side of the seam: ``@processor`` classes, ``@process(queue=...)`` methods, the inventory.

Decoration registers one :class:`ProcessMethod` per method in a process-wide inventory. A driver's transport
takes the reachable ones with :func:`routes` and hands each envelope to :func:`dispatch`.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_type_hints

from nestq_spec.container import Container, injectable
from nestq_spec.context import _CURRENT, JobMeta
from nestq_spec.envelope import WIRE_FORMAT_VERSION, _scan_once, loads_envelope, unwrap
from nestq_spec.errors import DispatchError, MalformedEnvelopeError, RegistrationError
from nestq_spec.jsonvalue import _identity, decoder_for
from nestq_spec.producer import validate_queue_name

__all__ = ["ProcessMethod", "dispatch", "inventory", "process", "processor", "routes"]

C = TypeVar("C", bound=type[Any])
F = TypeVar("F", bound=Callable[..., Awaitable[None]])

_QUEUE_ATTR = "__nestq_queue__"
_INVENTORY: list[ProcessMethod] = []
_SEEN: dict[tuple[str, str, str, str], ProcessMethod] = {}


@dataclass(frozen=True, slots=True, eq=False)
class ProcessMethod:
    """One ``@process(queue=...)`` method of one ``@processor`` class, as the inventory records it."""

    queue: str
    provider_type: type[Any]
    name: str
    func: Callable[[Any, Any], Awaitable[None]] = field(repr=False)
    _job_type: list[Any] = field(default_factory=list, repr=False)

    @property
    def qualname(self) -> str:
        """``Class.method``, as used in errors and logs."""
        return f"{self.provider_type.__qualname__}.{self.name}"

    @property
    def job_type(self) -> Any:
        """The annotated type of the job parameter (resolved on first use, so forward references work)."""
        return self._resolved()[0]

    def _resolved(self) -> list[Any]:
        """``[job_type, decode]``, resolved and compiled once; raises :class:`RegistrationError` if unresolvable."""
        if not self._job_type:
            job_type = _job_annotation(self.func, self.qualname)
            decode = decoder_for(job_type, f"payload for {self.qualname}")
            self._job_type.extend((job_type, decode))
        return self._job_type

    async def handler(
        self,
        envelope: Mapping[str, Any] | str | bytes,
        container: Container,
        meta: JobMeta | None = None,
    ) -> None:
        """Unwrap (fail closed), decode into the job type, get the host from the container, run in job context.

        Raises whatever the method raises; envelope and decoding errors are :class:`NonRetryableError`.
        """
        payload = unwrap(envelope)
        if meta is None:
            await self._run(payload, container, 1, None)
        else:
            await self._run(payload, container, meta.attempt, meta.job_id)

    async def _run(self, payload: Any, container: Container, attempt: int, job_id: str | None) -> None:
        """:meth:`handler` after the unwrap; :func:`dispatch` calls it with the payload it unwrapped once."""
        decode = (self._job_type or self._resolved())[1]
        job = payload if decode is _identity else decode(payload)
        host = container.get(self.provider_type)
        # current_job() builds the JobContext when asked: most handlers never ask, and building it costs a microsecond.
        token = _CURRENT.set([self, attempt, job_id, container, None])
        try:
            await self.func(host, job)
        finally:
            _CURRENT.reset(token)


def _positional(func: Callable[..., Any]) -> list[inspect.Parameter]:
    return [
        p for p in inspect.signature(func).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def _job_annotation(func: Callable[..., Any], qualname: str) -> Any:
    job = _positional(func)[1]
    try:
        hints = get_type_hints(func)
    except Exception as exc:
        raise RegistrationError(f"{qualname}: cannot resolve the annotation of {job.name!r}: {exc}") from exc
    return hints.get(job.name, Any)


def process(*, queue: str) -> Callable[[F], F]:
    """Bind an ``async def method(self, job: JobType)`` of a ``@processor`` class to ``queue``.

    Raises :class:`RegistrationError`, naming the method, for a bad queue name, a method that is not
    ``async def``, one without a job parameter, or one already bound to a queue.
    """

    def decorate(func: F) -> F:
        name = getattr(func, "__qualname__", repr(func))
        try:
            validate_queue_name(queue)
        except ValueError as exc:
            raise RegistrationError(f"{name}: @process(queue=...): {exc}") from None
        if hasattr(func, _QUEUE_ATTR):
            raise RegistrationError(
                f"{name} is already bound to queue {getattr(func, _QUEUE_ATTR)!r}; one method handles one "
                f"queue, so write a second method for {queue!r}"
            )
        if not inspect.iscoroutinefunction(func):
            raise RegistrationError(f"{name} must be 'async def' to be a @process handler (queue {queue!r})")
        params = _positional(func)
        if len(params) < 2:
            raise RegistrationError(
                f"{name} takes no job parameter; a @process handler looks like 'async def "
                f"{getattr(func, '__name__', 'handle')}(self, job: MyJob) -> None'"
            )
        extra = [p.name for p in params[2:] if p.default is inspect.Parameter.empty]
        if extra:
            raise RegistrationError(f"{name} takes more than one job parameter without a default: {extra}")
        setattr(func, _QUEUE_ATTR, queue)
        return func  # type: ignore[return-value]  # mypy narrows F by iscoroutinefunction

    return decorate


def _origin(cls: type[Any]) -> str:
    """Where ``cls`` was defined: its module's file when known, so one file imported under two names matches."""
    file = getattr(sys.modules.get(cls.__module__), "__file__", None)
    return os.path.realpath(file) if file else cls.__module__


def processor(cls: C) -> C:
    """Register every ``@process`` method of ``cls`` in the inventory and make ``cls`` injectable.

    Raises :class:`RegistrationError` when ``cls`` has no ``@process`` method, when ``@processor`` is applied to
    it twice, or when a class of the same name from the same source file is already registered, as happens when
    one module is imported under two names (``__main__`` and its package path) and every job would run twice.
    """
    if not isinstance(cls, type):
        raise RegistrationError(f"@processor decorates a class, not {cls!r}")
    found = [(name, fn) for name, fn in vars(cls).items() if hasattr(fn, _QUEUE_ATTR)]
    if not found:
        raise RegistrationError(f"@processor class {cls.__qualname__} has no @process(queue=...) method")
    origin = _origin(cls)
    new = []
    for name, fn in found:
        queue = getattr(fn, _QUEUE_ATTR)
        other = _SEEN.get((origin, cls.__qualname__, name, queue))
        if other is not None:
            if other.provider_type is cls:
                raise RegistrationError(
                    f"@processor is applied twice to {cls.__module__}.{cls.__qualname__} ({name} on queue {queue!r})"
                )
            raise RegistrationError(
                f"{cls.__module__}.{cls.__qualname__}.{name} is registered twice on queue {queue!r} (first from "
                f"module {other.provider_type.__module__!r}, again from {cls.__module__!r}, both defined in "
                f"{origin}); is its module imported under two names (for example as __main__ and by its package "
                "path), or the class defined again by a function called twice?"
            )
        new.append(ProcessMethod(queue, cls, name, fn))
    for method in new:
        _SEEN[(origin, cls.__qualname__, method.name, method.queue)] = method
    _INVENTORY.extend(new)
    return injectable(cls)


def inventory() -> tuple[ProcessMethod, ...]:
    """Every registered :class:`ProcessMethod` of this process, in registration order."""
    return tuple(_INVENTORY)


def routes(container: Container) -> dict[str, tuple[ProcessMethod, ...]]:
    """Steps (1) and (2) of a transport's ``serve``: the reachable methods, grouped by queue name.

    A method whose class no reachable module provides is skipped: importing a processor is not enough, the app's
    module graph must list it. Each returned method's job type is resolved here, so an annotation that cannot be
    resolved raises :class:`RegistrationError` at boot rather than on the first job.
    """
    grouped: dict[str, list[ProcessMethod]] = {}
    reachable = container.reachable
    for method in _INVENTORY:
        if method.provider_type in reachable:
            method._resolved()  # an unresolvable job annotation fails here, at boot, not on the first job
            grouped.setdefault(method.queue, []).append(method)
    return {queue: tuple(methods) for queue, methods in grouped.items()}


async def dispatch(
    methods: Sequence[ProcessMethod],
    envelope: Mapping[str, Any] | str | bytes,
    container: Container,
    meta: JobMeta | None = None,
) -> None:
    """Step (4): hand one envelope to every method of its queue, one after the other.

    The envelope is unwrapped once up front, so a malformed one raises its
    :class:`~nestq_spec.errors.EnvelopeError` before any handler runs. Every method runs even if an earlier one
    failed. One failing method re-raises its own exception; several raise :class:`DispatchError`. Either way the
    job as a whole failed and a retry runs every method again: handlers must be idempotent.
    """
    payload = _payload(envelope)
    attempt, job_id = (1, None) if meta is None else (meta.attempt, meta.job_id)
    if len(methods) == 1:
        await methods[0]._run(payload, container, attempt, job_id)
    else:
        await _run_each(methods, payload, container, attempt, job_id)


async def _dispatch_job(
    methods: Sequence[ProcessMethod], envelope: str | bytes, container: Container, attempt: int, job_id: str | None
) -> None:
    """``dispatch(methods, envelope, container, JobMeta(attempt, job_id))``, without building the ``JobMeta``.

    The driver toolkit's loop calls it once per job; the attempt is checked exactly as ``JobMeta`` checks it.
    """
    if type(attempt) is not int or attempt < 1:
        JobMeta(attempt, job_id)  # raises the ValueError that explains the attempt
    payload = _payload(envelope)
    if len(methods) != 1:
        await _run_each(methods, payload, container, attempt, job_id)
        return
    # methods[0]._run(payload, container, attempt, job_id), inline: one coroutine fewer per job.
    method = methods[0]
    decode = (method._job_type or method._resolved())[1]
    job = payload if decode is _identity else decode(payload)
    host = container.get(method.provider_type)
    token = _CURRENT.set([method, attempt, job_id, container, None])
    try:
        await method.func(host, job)
    finally:
        _CURRENT.reset(token)


def _payload(envelope: Mapping[str, Any] | str | bytes) -> Any:
    """Parse and unwrap one envelope, failing closed; the job's payload.

    The usual envelope, a well-formed one stored as UTF-8 bytes or text, takes a few C calls. Anything else (other
    types, padding, bad UTF-8, bad JSON, a wrong shape or version) goes through :func:`loads_envelope` and
    :func:`unwrap`, which raise the error that says what is wrong.
    """
    kind = type(envelope)
    if kind is bytes or kind is str:
        try:
            text: str = envelope.decode() if kind is bytes else envelope  # type: ignore[union-attr,assignment]
            parsed, end = _scan_once(text, 0)
        except (UnicodeDecodeError, StopIteration, ValueError, RecursionError):
            pass  # the checked path below says what is wrong
        else:
            # The checks of unwrap(), in its order of cost; bool is an int subclass, so {"v": true} is not version 1.
            if (end == len(text) and type(parsed) is dict and len(parsed) == 2 and "payload" in parsed
                    and type(version := parsed.get("v")) is int and version == WIRE_FORMAT_VERSION):
                return parsed["payload"]
    if not isinstance(envelope, Mapping):
        parsed = loads_envelope(envelope)
        if isinstance(parsed, str):
            # unwrap() would parse a str again, letting a double-encoded envelope ("{\"v\":1,...}") through.
            raise MalformedEnvelopeError(
                "envelope must be a JSON object {\"v\": 1, \"payload\": ...}, found a string "
                "(JSON text encoded twice?)"
            )
        envelope = parsed  # type: ignore[assignment]
    return unwrap(envelope)


async def _run_each(
    methods: Sequence[ProcessMethod], payload: Any, container: Container, attempt: int, job_id: str | None
) -> None:
    """Run every method of a queue with one payload; raise the one failure, or :class:`DispatchError` for several."""
    failures: dict[str, BaseException] = {}
    for method in methods:
        try:
            await method._run(payload, container, attempt, job_id)
        except Exception as exc:
            failures[method.qualname] = exc
    if len(failures) == 1:
        (failure,) = failures.values()
        raise failure
    if failures:
        raise DispatchError(methods[0].queue, failures)
