"""The driver is installed where the conformance kit looks for it, with a manifest that holds together."""

from __future__ import annotations

import pytest
from nestq_conformance.resolve import resolve_harness

from nestq_postgres.harness import PostgresHarness, harness


def test_the_entry_point_names_this_harness() -> None:
    # Fails when the package is not installed (pip install -e .): the entry point lives in its metadata.
    choice = resolve_harness("postgres")
    assert choice.harness is harness
    assert isinstance(choice.harness, PostgresHarness)


def test_the_capability_manifest_is_consistent() -> None:
    assert harness.capabilities.problems() == []


def test_a_storage_elsewhere_is_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    from nestq_spec import env_var

    from nestq_postgres.config import PostgresConfig

    monkeypatch.delenv("NESTQ_SUITE_ALLOW_REMOTE", raising=False)
    far = "postgres://queue.example.com:1"
    monkeypatch.setenv(env_var(PostgresConfig, "dsn"), far)
    with pytest.raises(RuntimeError, match="NESTQ_SUITE_ALLOW_REMOTE=1"):
        _ = PostgresHarness().address
    monkeypatch.setenv("NESTQ_SUITE_ALLOW_REMOTE", "1")
    fresh = PostgresHarness()
    assert fresh.address == far
    assert "queue.example.com" in fresh.describe()
