"""Modules: the import graph, diamonds, cycles, dynamic modules, and what reaches the container."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import pytest

from nestq_spec import (
    BootError,
    CircularImportError,
    ContainerBuilder,
    DynamicModule,
    Module,
    TransportContribution,
    module,
)
from nestq_spec.modules import assemble


class Log:
    """Records the order in which modules register."""

    lines: ClassVar[list[str]] = []


def _recording(name: str, imports: list[Any] | None = None) -> type[Module]:
    def register(cls: type[Module], builder: ContainerBuilder) -> ContainerBuilder:
        Log.lines.append(name)
        return builder

    cls = type(name, (Module,), {"imports": tuple(imports or ()), "register": classmethod(register)})
    return cls


@pytest.fixture(autouse=True)
def _clear_log() -> None:
    Log.lines.clear()


def test_imports_register_before_importers() -> None:
    leaf = _recording("Leaf")
    middle = _recording("Middle", [leaf])
    root = _recording("Root", [middle])
    assemble(root)
    assert Log.lines == ["Leaf", "Middle", "Root"]


def test_diamond_imports_are_registered_once() -> None:
    shared = _recording("Shared")
    left = _recording("Left", [shared])
    right = _recording("Right", [shared])
    root = _recording("Root", [left, right, shared])
    assemble(root)
    assert Log.lines == ["Shared", "Left", "Right", "Root"]


def test_circular_imports_fail_with_the_chain() -> None:
    class A(Module):
        pass

    class B(Module):
        imports = (A,)

    class C(Module):
        imports = (B,)

    A.imports = (C,)

    @module(imports=[A])
    class App:
        pass

    with pytest.raises(CircularImportError) as info:
        assemble(App)
    names = [n.rsplit(".", 1)[-1] for n in info.value.chain]
    assert names == ["A", "C", "B", "A"]
    assert re.fullmatch(r"circular module import: \S*A -> \S*C -> \S*B -> \S*A", str(info.value))
    assert isinstance(info.value, BootError)


def test_a_module_importing_itself() -> None:
    class Selfish(Module):
        pass

    Selfish.imports = (Selfish,)
    with pytest.raises(CircularImportError, match=r"circular module import: \S*Selfish -> \S*Selfish$"):
        assemble(Selfish)


def test_same_names_in_different_places_are_not_a_cycle() -> None:
    inner = _recording("QueueModule")
    outer = _recording("QueueModule", [inner])  # an app's QueueModule wrapping a driver's QueueModule
    assemble(outer)
    assert Log.lines == ["QueueModule", "QueueModule"]


@pytest.mark.parametrize("bad", [object(), "SomeModule", 42, int])
def test_importing_something_that_is_not_a_module(bad: object) -> None:
    @module(imports=[bad])  # type: ignore[list-item]
    class App:
        pass

    with pytest.raises(BootError) as info:
        assemble(App)
    assert f"{bad!r} is not a module (imported by " in str(info.value)
    assert "App); use @module, subclass Module, or a for_root(...) result" in str(info.value)


def test_a_root_that_is_not_a_module() -> None:
    with pytest.raises(BootError, match="is not a module; use @module"):
        assemble(object)


class QueueSetup(DynamicModule):
    def __init__(self, url: str) -> None:
        self.url = url

    def collect(self, builder: ContainerBuilder) -> ContainerBuilder:
        Log.lines.append(f"queue {self.url}")
        return builder

    def __repr__(self) -> str:
        return f"QueueModule.for_root({self.url!r})"


def test_a_dynamic_module_imported_twice_with_the_same_config_counts_once() -> None:
    @module(imports=[QueueSetup("redis://a")])
    class Feature:
        pass

    @module(imports=[QueueSetup("redis://a"), Feature])
    class App:
        pass

    assemble(App)
    assert Log.lines == ["queue redis://a"]


def test_a_dynamic_module_imported_twice_with_different_config_is_a_boot_error() -> None:
    @module(imports=[QueueSetup("redis://b")])
    class Feature:
        pass

    @module(imports=[QueueSetup("redis://a"), Feature])
    class App:
        pass

    with pytest.raises(BootError) as info:
        assemble(App)
    assert str(info.value) == (
        "QueueSetup is imported twice with different configuration: "
        "QueueModule.for_root('redis://a') and QueueModule.for_root('redis://b')"
    )


def test_dynamic_modules_compare_by_class_and_attributes() -> None:
    class Slotted(DynamicModule):
        __slots__ = ("url",)

        def __init__(self, url: str) -> None:
            self.url = url

        def collect(self, builder: ContainerBuilder) -> ContainerBuilder:
            return builder

    assert QueueSetup("x") == QueueSetup("x")
    assert QueueSetup("x") != QueueSetup("y")
    assert Slotted("x") == Slotted("x")
    assert Slotted("x") != Slotted("y")
    assert QueueSetup("x") != Slotted("x")


def test_module_decorator_lists_providers_and_keeps_its_own_register() -> None:
    class Thing:
        pass

    @module(providers=[Thing])
    class Plain:
        pass

    @module(imports=[Plain])
    class Custom:
        @classmethod
        def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
            Log.lines.append("custom register ran")
            return builder.provide_meta(TransportContribution("T", lambda c: None))  # type: ignore[arg-type,return-value]

    container = assemble(Custom)
    assert isinstance(container.get(Thing), Thing)
    assert Log.lines == ["custom register ran"]
    assert [c.name for c in container.get_all(TransportContribution)] == ["T"]
    assert Plain.providers == (Thing,)  # type: ignore[attr-defined]
    assert Custom.imports == (Plain,)  # type: ignore[attr-defined]


def test_module_providers_must_be_classes() -> None:
    with pytest.raises(BootError, match=r"@module on \S*Bad: providers must be classes, found 'text'"):

        @module(providers=["text"])  # type: ignore[list-item]
        class Bad:
            pass


def test_reachable_providers_come_from_the_graph_only() -> None:
    class A:
        pass

    class B:
        pass

    class Unlisted:
        pass

    @module(providers=[A])
    class ModA:
        pass

    @module(imports=[ModA], providers=[B])
    class App:
        pass

    reachable = assemble(App).reachable
    assert A in reachable
    assert B in reachable
    assert Unlisted not in reachable
