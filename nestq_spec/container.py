"""A small type-keyed container: singletons built on first use, dependencies injected by type annotation."""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, Union, cast, get_args, get_origin, get_type_hints

from nestq_spec.errors import BootError, MissingProviderError

__all__ = ["Container", "ContainerBuilder", "ReachableProviders", "injectable"]

T = TypeVar("T")

log = logging.getLogger("nestq")

CloseHook = Callable[[], Awaitable[None]]
"""An async callable run once when the application shuts down (``ContainerBuilder.on_close``)."""

_Key = Callable[..., T]
"""What a binding is keyed by: a class, abstract ones included.

A class object is a ``Callable[..., T]``; keys are typed this way rather than ``type[T]`` because mypy refuses an
abstract class where ``type[T]`` is expected (``type-abstract``), and the interface apps ask for most,
``JobProducer``, is abstract. Non-class keys are refused at run time.
"""
C = TypeVar("C", bound=type[Any])

_INJECTABLE = "__nestq_injectable__"


def injectable(cls: C) -> C:
    """Mark a class as built by the container, its ``__init__`` parameters resolved by their annotated types.

    A parameter whose type nobody provides but which has a default keeps its default; an ``X | None`` parameter
    gets ``X`` when something provides it.
    """
    setattr(cls, _INJECTABLE, True)
    return cls


def _name(key: object) -> str:
    return getattr(key, "__qualname__", None) or repr(key)


@dataclass(frozen=True, slots=True)
class ReachableProviders:
    """The provider types that the application's module graph reaches.

    A driver's transport skips every ``@process`` method whose class is not in here, so a processor that was
    imported but not listed in any reachable module never runs.
    """

    types: frozenset[type[Any]]

    def __contains__(self, item: object) -> bool:
        return item in self.types


@dataclass(frozen=True, slots=True)
class _Provider:
    key: object
    source: str
    value: object = None
    factory: Callable[[Container], object] | None = None
    cls: type[Any] | None = None
    alias: object = None


_MISSING_HINTS: dict[str, str] = {
    "JobProducer": "import a driver's producer module, for example MemoryQueueModule.for_root()",
}


class ContainerBuilder:
    """Collects providers and multi-bindings while the module graph is walked; ``build()`` freezes them."""

    def __init__(self) -> None:
        self._providers: dict[object, _Provider] = {}
        self._meta: dict[type[Any], list[object]] = {}
        self._reachable: set[type[Any]] = set()
        self._hooks: list[tuple[str, CloseHook]] = []
        self.source = "(root)"
        """The module being registered now; named in clash errors."""

    def _add(self, provider: _Provider) -> ContainerBuilder:
        existing = self._providers.get(provider.key)
        if existing is not None and existing != provider:
            if existing.source == provider.source or (existing.cls is not None and existing.cls is provider.cls):
                return self
            raise BootError(
                f"{_name(provider.key)} is provided twice: by {existing.source} and by {provider.source}; "
                "import only one of them"
            )
        self._providers[provider.key] = provider
        if isinstance(provider.key, type):
            self._reachable.add(provider.key)
        if provider.cls is not None:
            self._reachable.add(provider.cls)
        return self

    def provide(
        self,
        key: _Key[T],
        value: T | None = None,
        *,
        factory: Callable[[Container], T] | None = None,
    ) -> ContainerBuilder:
        """Provide ``key``: a ready ``value``, a ``factory(container)``, or (neither) the class built by injection."""
        if value is not None and factory is not None:
            raise BootError(f"provide({_name(key)}): give a value or a factory, not both")
        if value is not None:
            return self._add(_Provider(key, self.source, value=value))
        if factory is not None:
            return self._add(_Provider(key, self.source, factory=factory))
        if not isinstance(key, type):
            raise BootError(f"provide({key!r}): only a class can be built without a value or factory")
        return self._add(_Provider(key, self.source, cls=key))

    def bind(self, interface: _Key[T], implementation: _Key[T]) -> ContainerBuilder:
        """Make ``get(interface)`` return the same singleton as ``get(implementation)``."""
        if not (isinstance(interface, type) and isinstance(implementation, type)):
            raise BootError(f"bind({_name(interface)}, {_name(implementation)}): both must be classes")
        if not issubclass(implementation, interface):
            raise BootError(
                f"bind({_name(interface)}, {_name(implementation)}): {_name(implementation)} is not a subclass "
                f"of {_name(interface)}, so get({_name(interface)}) would return the wrong type"
            )
        return self._add(_Provider(interface, self.source, alias=implementation))

    def provide_meta(self, contribution: object) -> ContainerBuilder:
        """Add a multi-binding, keyed by its type (e.g. a :class:`~nestq_spec.TransportContribution`)."""
        bucket = self._meta.setdefault(type(contribution), [])
        if contribution not in bucket:
            bucket.append(contribution)
        return self

    def provides(self, key: object) -> bool:
        """Tell whether ``key`` has a provider so far."""
        return key in self._providers

    def on_close(self, hook: CloseHook) -> ContainerBuilder:
        """Run ``await hook()`` when the application shuts down (``Container.aclose``), in reverse order.

        For what a module opens that is not a provider with an ``aclose()`` of its own (those are closed anyway).
        """
        if not callable(hook):
            raise BootError(f"on_close({hook!r}): expected an async callable")
        self._hooks.append((self.source, hook))
        return self

    def build(self) -> Container:
        """Freeze what was collected into a :class:`Container`."""
        container = Container(dict(self._providers), {k: tuple(v) for k, v in self._meta.items()},
                              ReachableProviders(frozenset(self._reachable)))
        # Values and hooks in registration order: they exist from boot, before anything the container builds.
        for provider in self._providers.values():
            if provider.value is not None:
                container._opened(provider.value)
        for source, hook in self._hooks:
            container._closers.append((f"on_close hook of {source}", hook))
        return container


class Container:
    """Type-keyed singletons and multi-bindings of one application.

    ``get(SomeType)`` builds the provider on first use (resolving its ``__init__`` by annotation) and returns the
    same object afterwards. ``get(Container)`` and ``get(ReachableProviders)`` always work.
    """

    def __init__(
        self,
        providers: dict[object, _Provider],
        meta: dict[type[Any], tuple[object, ...]],
        reachable: ReachableProviders,
    ) -> None:
        self._providers = providers
        self._meta = meta
        self._instances: dict[object, object] = {Container: self, ReachableProviders: reachable}
        self._closers: list[tuple[str, CloseHook]] = []
        self._closing_ids: set[int] = set()
        self._closed = False
        self.reachable = reachable
        """The provider types the application's module graph reaches."""

    def _opened(self, instance: object) -> None:
        """Remember ``instance`` for :meth:`aclose` if it has an async ``aclose()`` (once per object)."""
        close = getattr(instance, "aclose", None)
        if close is None or id(instance) in self._closing_ids or not inspect.iscoroutinefunction(close):
            return
        self._closing_ids.add(id(instance))
        self._closers.append((_name(type(instance)), close))

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` ran."""
        return self._closed

    async def aclose(self) -> None:
        """Close what the application opened: every provider with an async ``aclose()`` and every ``on_close`` hook.

        In reverse order of creation (a connection built after the pool it uses is closed before it), each once;
        idempotent. Every closer runs even if an earlier one fails; the first failure is raised afterwards.
        """
        if self._closed:
            return
        self._closed = True
        first: BaseException | None = None
        for what, close in reversed(self._closers):
            try:
                await close()
            except Exception as exc:
                log.error("closing %s failed: %s: %s", what, type(exc).__name__, exc)
                first = first or exc
        if first is not None:
            raise first

    def get(self, key: _Key[T]) -> T:
        """Return the singleton for ``key``; raise :class:`MissingProviderError` naming what needed it."""
        # No cast() here: get() runs once per job (the processor of each dispatch), and cast() is a call.
        try:
            return self._instances[key]  # type: ignore[return-value]
        except KeyError:
            return self._resolve(key, ())  # type: ignore[return-value]

    def get_optional(self, key: _Key[T]) -> T | None:
        """Return the singleton for ``key``, or ``None`` when nothing provides it."""
        if key not in self._instances and key not in self._providers:
            return None
        return self.get(key)

    def provides(self, key: object) -> bool:
        """Tell whether ``key`` can be resolved."""
        return key in self._instances or key in self._providers

    def get_all(self, kind: type[T]) -> tuple[T, ...]:
        """Return every multi-binding of type ``kind``, in registration order."""
        return cast(tuple[T, ...], self._meta.get(kind, ()))

    def _resolve(self, key: object, chain: tuple[object, ...]) -> object:
        if key in self._instances:
            return self._instances[key]
        provider = self._providers.get(key)
        if provider is None:
            hint = _MISSING_HINTS.get(_name(key), "")
            raise MissingProviderError(_name(key), _names(chain), hint)
        if key in chain:
            raise BootError("dependency cycle: " + " -> ".join(_names((*chain, key))))
        here = (*chain, key)
        if provider.alias is not None:
            instance = self._resolve(provider.alias, here)
        elif provider.factory is not None:
            instance = provider.factory(self)
        elif provider.cls is not None:
            instance = self._construct(provider.cls, here)
        else:
            instance = provider.value
        self._instances[key] = instance
        self._opened(instance)
        return instance

    def _construct(self, cls: type[Any], chain: tuple[object, ...]) -> object:
        init = cls.__init__
        if init is object.__init__:
            return cls()
        try:
            hints = get_type_hints(init)
        except Exception as exc:
            raise BootError(f"cannot read the constructor annotations of {_name(cls)}: {exc}") from exc
        kwargs: dict[str, object] = {}
        for param in _params(init):
            wanted = _provided_form(hints.get(param.name), self.provides)
            if wanted is not None and self.provides(wanted):
                kwargs[param.name] = self._resolve(wanted, chain)
            elif param.default is inspect.Parameter.empty:
                if wanted is None:
                    raise BootError(
                        f"{_name(cls)}.__init__ parameter {param.name!r} has no type annotation, so the "
                        "container cannot inject it; annotate it or give it a default"
                    )
                raise MissingProviderError(_name(wanted), _names(chain), _MISSING_HINTS.get(_name(wanted), ""))
        return cls(**kwargs)


def _names(chain: Iterable[object]) -> tuple[str, ...]:
    return tuple(_name(key) for key in chain)


def _provided_form(wanted: Any, provides: Callable[[object], bool]) -> Any:
    """``X`` for an ``X | None`` parameter whose ``X`` is provided (so it is injected); ``wanted`` otherwise."""
    if get_origin(wanted) in (Union, types.UnionType) and not provides(wanted):
        options = [a for a in get_args(wanted) if a is not type(None)]
        if len(options) == 1 and len(get_args(wanted)) == 2 and provides(options[0]):
            return options[0]
    return wanted


def _params(init: Callable[..., Any]) -> Iterable[inspect.Parameter]:
    params = list(inspect.signature(init).parameters.values())[1:]
    return [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
