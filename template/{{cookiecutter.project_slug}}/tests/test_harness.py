{%- set P = cookiecutter.__class_prefix -%}
"""The driver is installed where the conformance kit looks for it, with a manifest that holds together."""

from __future__ import annotations

from nestq_conformance.resolve import resolve_harness

from {{ cookiecutter.package_name }}.harness import {{ P }}Harness, harness


def test_the_entry_point_names_this_harness() -> None:
    # Fails when the package is not installed (pip install -e .): the entry point lives in its metadata.
    choice = resolve_harness("{{ cookiecutter.__driver_name }}")
    assert choice.harness is harness
    assert isinstance(choice.harness, {{ P }}Harness)


def test_the_capability_manifest_is_consistent() -> None:
    assert harness.capabilities.problems() == []
