"""Unit tests of the settings (the conformance suite checks the dual-path rules too: CFG-001..006)."""

from __future__ import annotations

import pytest
from nestq_spec import ConfigError

from nestq_postgres.config import PostgresConfig, load_config


def test_defaults_load_from_an_empty_environment() -> None:
    assert load_config(env={}) == PostgresConfig()


def test_environment_is_read_and_pinned_values_win() -> None:
    env = {"NESTQ_POSTGRES__CONCURRENCY": "3"}
    assert load_config(env=env).concurrency == 3
    assert load_config({"concurrency": 7}, env=env).concurrency == 7


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="NESTQ_POSTGRES__CONCURRENCY"):
        load_config(env={"NESTQ_POSTGRES__CONCURRENCY": "zero"})


def test_backoff_grows_and_is_capped() -> None:
    policy = load_config({"backoff_base": 1.0, "backoff_cap": 3.0}, env={}).retry_policy()
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]


def test_a_heartbeat_that_cannot_keep_a_lease_is_refused() -> None:
    with pytest.raises(ConfigError, match="NESTQ_POSTGRES__HEARTBEAT_INTERVAL"):
        load_config({"heartbeat_interval": 5.0, "visibility_timeout": 5.0}, env={})


def test_a_password_in_the_dsn_is_not_shown() -> None:
    config = load_config({"dsn": "postgres://user:hunter2@host:1"}, env={})
    assert "hunter2" not in repr(config)


@pytest.mark.parametrize(
    ("dsn", "why"),
    [
        ("mysql://user:hunter2@host/db", "must start with postgresql://"),
        ("postgresql://user:hunter2@host:notaport/db", "not a valid URL"),
        ("postgresql://user:hunter2@host:99999/db", "not a valid URL"),
        ("user:hunter2@host/db", "must start with postgresql://"),
    ],
)
def test_a_malformed_dsn_is_one_clear_error_with_the_password_masked(dsn: str, why: str) -> None:
    with pytest.raises(ConfigError, match="NESTQ_POSTGRES__DSN") as caught:
        load_config(env={"NESTQ_POSTGRES__DSN": dsn})
    assert why in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("schema", ["", "Public", "1abc", "a;drop table x", "a" * 64, "a-b"])
def test_a_schema_that_is_not_a_plain_identifier_is_refused(schema: str) -> None:
    with pytest.raises(ConfigError, match="NESTQ_POSTGRES__SCHEMA"):
        load_config({"schema": schema}, env={})
