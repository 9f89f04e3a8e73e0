"""Dual-path configuration: NESTQ_MEMORY__<KEY> or pinned in code (a whole MemoryConfig or a mapping)."""

from __future__ import annotations

import pytest
from nestq_memory import MemoryConfig, MemoryQueueModule, load_config

from nestq_spec import Application, ConfigError, describe_settings, module


def test_defaults() -> None:
    config = load_config(None, env={})
    assert (config.concurrency, config.max_attempts, config.backoff_base, config.backoff_cap,
            config.shutdown_grace) == (10, 3, 0.5, 30.0, 10.0)


def test_every_setting_is_read_from_its_variable() -> None:
    env = {
        "NESTQ_MEMORY__CONCURRENCY": "4",
        "NESTQ_MEMORY__MAX_ATTEMPTS": "7",
        "NESTQ_MEMORY__BACKOFF_BASE": "0.25",
        "NESTQ_MEMORY__BACKOFF_CAP": "2",
        "NESTQ_MEMORY__SHUTDOWN_GRACE": "1.5",
    }
    assert load_config(None, env=env) == MemoryConfig(
        concurrency=4, max_attempts=7, backoff_base=0.25, backoff_cap=2.0, shutdown_grace=1.5
    )


def test_pinned_values_win_over_the_environment() -> None:
    env = {"NESTQ_MEMORY__CONCURRENCY": "4", "NESTQ_MEMORY__MAX_ATTEMPTS": "7"}
    config = load_config({"concurrency": 2}, env=env)
    assert (config.concurrency, config.max_attempts) == (2, 7)
    whole = MemoryConfig(concurrency=3)
    assert load_config(whole, env=env) is whole


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"NESTQ_MEMORY__CONCURRENCY": "many"}, "NESTQ_MEMORY__CONCURRENCY"),
        ({"NESTQ_MEMORY__CONCURRENCY": "0"}, "NESTQ_MEMORY__CONCURRENCY"),
        ({"NESTQ_MEMORY__BACKOFF_BASE": "-1"}, "NESTQ_MEMORY__BACKOFF_BASE"),
        ({"NESTQ_MEMORY__BACKOFF_BASE": "5", "NESTQ_MEMORY__BACKOFF_CAP": "1"}, "NESTQ_MEMORY__BACKOFF_CAP"),
    ],
)
def test_bad_values_fail_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(None, env=env)


def test_unknown_pinned_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="no setting"):
        load_config({"concurency": 2}, env={})


def test_backoff_doubles_up_to_the_cap() -> None:
    config = MemoryConfig(backoff_base=0.5, backoff_cap=3.0)
    assert [config.backoff(n) for n in (1, 2, 3, 4, 100)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_every_setting_is_documented() -> None:
    rows = describe_settings(MemoryConfig)
    assert {r.name for r in rows} == {"concurrency", "max_attempts", "backoff_base", "backoff_cap", "shutdown_grace"}
    assert all(r.help and r.env_var.startswith("NESTQ_MEMORY__") for r in rows)


def test_for_root_reads_the_environment_at_boot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTQ_MEMORY__CONCURRENCY", "7")

    @module(imports=[MemoryQueueModule.for_root({"max_attempts": 5})])
    class App:
        pass

    config = Application.create(App).container.get(MemoryConfig)
    assert (config.concurrency, config.max_attempts) == (7, 5)
