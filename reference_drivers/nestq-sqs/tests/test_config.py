"""Unit tests of the settings (the conformance suite checks the dual-path rules too: CFG-001..006)."""

from __future__ import annotations

import pytest
from nestq_spec import ConfigError

from nestq_sqs.config import SqsConfig, load_config


def test_defaults_load_from_an_empty_environment() -> None:
    assert load_config(env={}) == SqsConfig()


def test_environment_is_read_and_pinned_values_win() -> None:
    env = {"NESTQ_SQS__CONCURRENCY": "3"}
    assert load_config(env=env).concurrency == 3
    assert load_config({"concurrency": 7}, env=env).concurrency == 7


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="NESTQ_SQS__CONCURRENCY"):
        load_config(env={"NESTQ_SQS__CONCURRENCY": "zero"})


def test_backoff_grows_and_is_capped() -> None:
    policy = load_config({"backoff_base": 1.0, "backoff_cap": 3.0}, env={}).retry_policy()
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]


def test_a_heartbeat_that_cannot_keep_a_lease_is_refused() -> None:
    with pytest.raises(ConfigError, match="NESTQ_SQS__HEARTBEAT_INTERVAL"):
        load_config({"heartbeat_interval": 5.0, "visibility_timeout": 5.0}, env={})


def test_a_password_in_the_endpoint_is_not_shown() -> None:
    config = load_config({"endpoint_url": "http://user:hunter2@host:1"}, env={})
    assert "hunter2" not in repr(config)


@pytest.mark.parametrize("url", ["localhost:4566", "ftp://host", "http://", "http://user:hunter2@host:port"])
def test_a_bad_endpoint_is_one_clear_error_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError, match="NESTQ_SQS__ENDPOINT_URL") as caught:
        load_config(env={"NESTQ_SQS__ENDPOINT_URL": url})
    assert "hunter2" not in str(caught.value)


def test_a_bad_queue_prefix_is_refused() -> None:
    with pytest.raises(ConfigError, match="NESTQ_SQS__QUEUE_PREFIX"):
        load_config({"queue_prefix": "has.dot"}, env={})


def test_a_visibility_timeout_over_sqs_limit_is_refused() -> None:
    with pytest.raises(ConfigError, match="NESTQ_SQS__VISIBILITY_TIMEOUT"):
        load_config(env={"NESTQ_SQS__VISIBILITY_TIMEOUT": "50000"})
