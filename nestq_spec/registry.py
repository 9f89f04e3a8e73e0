"""The consume side of the seam: ``@processor`` classes, ``@process(queue=...)`` methods, the inventory.

Decoration registers one :class:`ProcessMethod` per method in a process-wide inventory. A driver's transport
takes the reachable ones with :func:`routes` and hands each envelope to :func:`dispatch`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_type_hints

from nestq_spec.container import Container, injectable
from nestq_spec.context import _CURRENT, JobContext, JobMeta
from nestq_spec.envelope import loads_envelope, unwrap
from nestq_spec.errors import DispatchError, RegistrationError
from nestq_spec.jsonvalue import decode_payload
from nestq_spec.producer import validate_queue_name

__all__ = ["ProcessMethod", "dispatch", "inventory", "process", "processor", "routes"]

C = TypeVar("C", bound=type[Any])
F = TypeVar("F", bound=Callable[..., Awaitable[None]])

_QUEUE_ATTR = "__nestq_queue__"
_INVENTORY: list[ProcessMethod] = []


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
        if not self._job_type:
            self._job_type.append(_job_annotation(self.func, self.qualname))
        return self._job_type[0]

    async def handler(
        self,
        envelope: Mapping[str, Any] | str | bytes,
        container: Container,
        meta: JobMeta | None = None,
    ) -> None:
        """Unwrap (fail closed), decode into the job type, get the host from the container, run in job context.

        Raises whatever the method raises; envelope and decoding errors are :class:`NonRetryableError`.
        """
        job = decode_payload(unwrap(envelope), self.job_type, f"payload for {self.qualname}")
        host = container.get(self.provider_type)
        meta = meta or _FIRST
        token = _CURRENT.set(JobContext(self.queue, meta.attempt, meta.job_id, self.qualname, container))
        try:
            await self.func(host, job)
        finally:
            _CURRENT.reset(token)


_FIRST = JobMeta()


def _job_annotation(func: Callable[..., Any], qualname: str) -> Any:
    params = list(inspect.signature(func).parameters.values())
    job = params[1]
    try:
        hints = get_type_hints(func)
    except Exception as exc:
        raise RegistrationError(f"{qualname}: cannot resolve the annotation of {job.name!r}: {exc}") from exc
    return hints.get(job.name, Any)


def process(*, queue: str) -> Callable[[F], F]:
    """Bind an ``async def method(self, job: JobType)`` of a ``@processor`` class to ``queue``."""
    try:
        validate_queue_name(queue)
    except ValueError as exc:
        raise RegistrationError(f"@process(queue=...): {exc}") from None

    def decorate(func: F) -> F:
        name = getattr(func, "__qualname__", repr(func))
        if hasattr(func, _QUEUE_ATTR):
            raise RegistrationError(
                f"{name} is already bound to queue {getattr(func, _QUEUE_ATTR)!r}; one method handles one "
                f"queue, so write a second method for {queue!r}"
            )
        if not inspect.iscoroutinefunction(func):
            raise RegistrationError(f"{name} must be 'async def' to be a @process handler (queue {queue!r})")
        params = [
            p for p in inspect.signature(func).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if len(params) < 2:
            raise RegistrationError(
                f"{name} takes no job parameter; a @process handler looks like 'async def {func.__name__}"
                "(self, job: MyJob) -> None'"
            )
        extra = [p.name for p in params[2:] if p.default is inspect.Parameter.empty]
        if extra:
            raise RegistrationError(f"{name} takes more than one job parameter without a default: {extra}")
        setattr(func, _QUEUE_ATTR, queue)
        return func  # type: ignore[return-value]

    return decorate


def processor(cls: C) -> C:
    """Register every ``@process`` method of ``cls`` in the inventory and make ``cls`` injectable.

    Raises :class:`RegistrationError` when ``cls`` has no ``@process`` method, or when a method of the same
    class (by module and qualified name) is already registered on the same queue, as happens when one module is
    imported under two names.
    """
    if not isinstance(cls, type):
        raise RegistrationError(f"@processor decorates a class, not {cls!r}")
    found = [(name, fn) for name, fn in vars(cls).items() if hasattr(fn, _QUEUE_ATTR)]
    if not found:
        raise RegistrationError(f"@processor class {cls.__qualname__} has no @process(queue=...) method")
    new = []
    for name, fn in found:
        queue = getattr(fn, _QUEUE_ATTR)
        for other in _INVENTORY:
            if (
                other.queue == queue
                and other.name == name
                and other.provider_type.__qualname__ == cls.__qualname__
                and other.provider_type.__module__ == cls.__module__
            ):
                raise RegistrationError(
                    f"{cls.__module__}.{cls.__qualname__}.{name} is registered twice on queue {queue!r}; is its "
                    "module imported under two names (for example as __main__ and by its package path)?"
                )
        new.append(ProcessMethod(queue, cls, name, fn))
    _INVENTORY.extend(new)
    return injectable(cls)


def inventory() -> tuple[ProcessMethod, ...]:
    """Every registered :class:`ProcessMethod` of this process, in registration order."""
    return tuple(_INVENTORY)


def routes(container: Container) -> dict[str, tuple[ProcessMethod, ...]]:
    """Steps (1) and (2) of a transport's ``serve``: the reachable methods, grouped by queue name.

    A method whose class no reachable module provides is skipped: importing a processor is not enough, the app's
    module graph must list it.
    """
    grouped: dict[str, list[ProcessMethod]] = {}
    reachable = container.reachable
    for method in _INVENTORY:
        if method.provider_type in reachable:
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
    if not isinstance(envelope, Mapping):
        envelope = loads_envelope(envelope)  # type: ignore[assignment]
    unwrap(envelope)
    if len(methods) == 1:
        await methods[0].handler(envelope, container, meta)
        return
    failures: dict[str, BaseException] = {}
    for method in methods:
        try:
            await method.handler(envelope, container, meta)
        except Exception as exc:
            failures[method.qualname] = exc
    if failures:
        raise DispatchError(methods[0].queue, failures)
