"""Unit tests of the settings (the conformance suite checks the dual-path rules too: CFG-001..006)."""

from __future__ import annotations

import pytest
from nestq_spec import ConfigError

from nestq_rabbitmq.config import RabbitmqConfig, load_config


def test_defaults_load_from_an_empty_environment() -> None:
    assert load_config(env={}) == RabbitmqConfig()


def test_environment_is_read_and_pinned_values_win() -> None:
    env = {"NESTQ_RABBITMQ__CONCURRENCY": "3"}
    assert load_config(env=env).concurrency == 3
    assert load_config({"concurrency": 7}, env=env).concurrency == 7


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="NESTQ_RABBITMQ__CONCURRENCY"):
        load_config(env={"NESTQ_RABBITMQ__CONCURRENCY": "zero"})


def test_backoff_grows_and_is_capped() -> None:
    policy = load_config({"backoff_base": 1.0, "backoff_cap": 3.0}, env={}).retry_policy()
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]


def test_a_password_in_the_url_is_not_shown() -> None:
    config = load_config({"url": "amqp://user:hunter2@host:1"}, env={})
    assert "hunter2" not in repr(config)


def test_a_management_url_must_be_http_and_its_password_is_not_shown() -> None:
    with pytest.raises(ConfigError, match="NESTQ_RABBITMQ__MANAGEMENT_URL") as caught:
        load_config(env={"NESTQ_RABBITMQ__MANAGEMENT_URL": "ftp://user:hunter2@host/"})
    assert "hunter2" not in str(caught.value)
    config = load_config({"management_url": "http://user:hunter2@host:15672/"}, env={})
    assert "hunter2" not in repr(config)
