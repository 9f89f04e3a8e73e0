{%- set P = cookiecutter.__class_prefix -%}
"""The driver is installed where the conformance kit looks for it, with a manifest that holds together."""

from __future__ import annotations

{% if cookiecutter.connection_style != "path" %}import pytest
{% endif %}from nestq_conformance.resolve import resolve_harness

from {{ cookiecutter.package_name }}.harness import {{ P }}Harness, harness


def test_the_entry_point_names_this_harness() -> None:
    # Fails when the package is not installed (pip install -e .): the entry point lives in its metadata.
    choice = resolve_harness("{{ cookiecutter.__driver_name }}")
    assert choice.harness is harness
    assert isinstance(choice.harness, {{ P }}Harness)


def test_the_capability_manifest_is_consistent() -> None:
    assert harness.capabilities.problems() == []
{%- if cookiecutter.connection_style != "path" %}


def test_a_storage_elsewhere_is_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    from nestq_spec import env_var

    from {{ cookiecutter.package_name }}.config import {{ P }}Config

    monkeypatch.delenv("NESTQ_SUITE_ALLOW_REMOTE", raising=False)
    far = {% if cookiecutter.connection_style == "url" %}"{{ cookiecutter.__driver_name }}://queue.example.com:1"{% else %}"queue.example.com"{% endif %}
    monkeypatch.setenv(env_var({{ P }}Config, "{{ cookiecutter.connection_style }}"), far)
    with pytest.raises(RuntimeError, match="NESTQ_SUITE_ALLOW_REMOTE=1"):
        _ = {{ P }}Harness().address
    monkeypatch.setenv("NESTQ_SUITE_ALLOW_REMOTE", "1")
    fresh = {{ P }}Harness()
    assert fresh.address == far
    assert "queue.example.com" in fresh.describe()
{%- endif %}
