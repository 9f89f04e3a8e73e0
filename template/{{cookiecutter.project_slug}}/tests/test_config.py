{%- set P = cookiecutter.__class_prefix -%}
{%- set NS = cookiecutter.__namespace|upper -%}
{%- set D = cookiecutter.__driver_name -%}
"""Unit tests of the settings (the conformance suite checks the dual-path rules too: CFG-001..006)."""

from __future__ import annotations

import pytest
from nestq_spec import ConfigError

from {{ cookiecutter.package_name }}.config import {{ P }}Config, load_config


def test_defaults_load_from_an_empty_environment() -> None:
    assert load_config(env={}) == {{ P }}Config()


def test_environment_is_read_and_pinned_values_win() -> None:
    env = {"NESTQ_{{ NS }}__CONCURRENCY": "3"}
    assert load_config(env=env).concurrency == 3
    assert load_config({"concurrency": 7}, env=env).concurrency == 7


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="NESTQ_{{ NS }}__CONCURRENCY"):
        load_config(env={"NESTQ_{{ NS }}__CONCURRENCY": "zero"})


def test_backoff_grows_and_is_capped() -> None:
    policy = load_config({"backoff_base": 1.0, "backoff_cap": 3.0}, env={}).retry_policy()
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]
{%- if cookiecutter.storage_model == "leases" %}


def test_a_heartbeat_that_cannot_keep_a_lease_is_refused() -> None:
    with pytest.raises(ConfigError, match="NESTQ_{{ NS }}__HEARTBEAT_INTERVAL"):
        load_config({"heartbeat_interval": 5.0, "visibility_timeout": 5.0}, env={})
{%- endif %}
{%- if cookiecutter.connection_style == "url" %}


def test_a_password_in_the_url_is_not_shown() -> None:
    config = load_config({"url": "{{ D }}://user:hunter2@host:1"}, env={})
    assert "hunter2" not in repr(config)
{%- elif cookiecutter.connection_style == "host" %}


def test_the_password_is_not_shown() -> None:
    assert "hunter2" not in repr(load_config({"password": "hunter2"}, env={}))
{%- endif %}
