"""Modules: how an application declares what its container holds.

A static module is a class (``@module(imports=[...], providers=[...])`` or a :class:`Module` subclass); a dynamic
module is an object a ``for_root(...)`` call returns, carrying configuration. ``assemble`` walks the import graph
from the root, depth first, imports before importers, each module once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, TypeVar

from nestq_spec.container import Container, ContainerBuilder
from nestq_spec.errors import BootError, CircularImportError

if TYPE_CHECKING:
    from nestq_spec.transport import Transport

__all__ = ["DynamicModule", "Module", "ModuleLike", "TransportContribution", "assemble", "module"]


class Module:
    """A static module: its ``imports`` are assembled first, then ``register`` adds its ``providers``.

    Subclass it and override :meth:`register` for anything beyond plain providers, as the seed's
    ``impl Module for YourQueueWorkerModule`` does.
    """

    imports: ClassVar[Sequence[ModuleLike]] = ()
    providers: ClassVar[Sequence[type[Any]]] = ()

    @classmethod
    def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
        """Add this module's providers to ``builder``."""
        for provider in cls.providers:
            builder.provide(provider)
        return builder


class DynamicModule(ABC):
    """A configured module instance, as returned by ``SomeQueueModule.for_root(config)``.

    Two equal instances of one class in a graph count once; two different ones are a boot error, since the
    application would be configured twice. Equality defaults to "same class, equal attributes".
    """

    imports: Sequence[ModuleLike] = ()

    @abstractmethod
    def collect(self, builder: ContainerBuilder) -> ContainerBuilder:
        """Add this module's providers to ``builder`` and return it."""

    def __eq__(self, other: object) -> bool:
        """Same class and equal attributes: the same configuration (override for anything subtler)."""
        if type(other) is not type(self):
            return NotImplemented
        return _state(self) == _state(other)

    def __hash__(self) -> int:
        return hash(type(self))


def _state(obj: object) -> dict[str, object]:
    state = dict(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        slots = getattr(cls, "__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot not in ("__dict__", "__weakref__") and hasattr(obj, slot):
                state[slot] = getattr(obj, slot)
    return state


ModuleLike: TypeAlias = "type[Module] | DynamicModule | type[Any]"
"""What ``imports=[...]`` accepts: a static module class or a dynamic module instance."""

M = TypeVar("M", bound=type[Any])


def module(*, imports: Sequence[ModuleLike] = (), providers: Sequence[type[Any]] = ()) -> Callable[[M], M]:
    """Declare a class as a static module, like the seed's ``#[module(imports = [...])]``."""

    def decorate(cls: M) -> M:
        if not isinstance(cls, type):
            raise BootError(f"@module decorates a class, not {cls!r}")
        for item in providers:
            if not isinstance(item, type):
                raise BootError(f"@module on {cls.__qualname__}: providers must be classes, found {item!r}")
        cls.imports = tuple(imports)
        cls.providers = tuple(providers)
        if not issubclass(cls, Module) and "register" not in vars(cls):
            cls.register = classmethod(Module.register.__func__)  # type: ignore[attr-defined]
        cls.__nestq_module__ = True
        return cls

    return decorate


@dataclass(frozen=True, slots=True)
class TransportContribution:
    """A multi-binding through which a worker module contributes a :class:`~nestq_spec.Transport`.

    ``build(container)`` is called once at boot; the application then calls ``configure`` and ``serve`` on it.
    """

    name: str
    build: Callable[[Container], Transport]


def _label(item: object) -> str:
    if isinstance(item, type):
        return item.__qualname__
    return type(item).__qualname__


def _is_module(item: object) -> bool:
    if isinstance(item, DynamicModule):
        return True
    return isinstance(item, type) and (issubclass(item, Module) or getattr(item, "__nestq_module__", False))


def assemble(root: ModuleLike, builder: ContainerBuilder | None = None) -> Container:
    """Walk the module graph from ``root`` and build the application's container.

    Raises :class:`CircularImportError` with the chain of modules for an import cycle, and :class:`BootError` for
    an import that is not a module or a dynamic module imported twice with different configuration.
    """
    builder = builder or ContainerBuilder()
    done: dict[object, object] = {}
    stack: list[object] = []
    labels: list[str] = []

    def visit(item: object) -> None:
        if not _is_module(item):
            where = f" (imported by {labels[-1]})" if labels else ""
            raise BootError(
                f"{item!r} is not a module{where}; use @module, subclass Module, or a for_root(...) result"
            )
        key: object = type(item) if isinstance(item, DynamicModule) else item
        label = _label(item)
        if key in done:
            if isinstance(item, DynamicModule) and done[key] != item:
                raise BootError(f"{label} is imported twice with different configuration: {done[key]!r} and {item!r}")
            return
        if key in stack:
            raise CircularImportError([*labels[stack.index(key):], label])
        stack.append(key)
        labels.append(label)
        for child in getattr(item, "imports", ()):
            visit(child)
        stack.pop()
        labels.pop()
        builder.source = label
        if isinstance(item, DynamicModule):
            item.collect(builder)
        else:
            item.register(builder)  # type: ignore[attr-defined]
        done[key] = item

    visit(root)
    builder.source = "(root)"
    return builder.build()
