{%- set P = cookiecutter.__class_prefix -%}
{%- set NS = cookiecutter.__namespace|upper -%}
"""Unit tests of the settings (the conformance suite checks the dual-path rules too: CFG-001..006)."""

from __future__ import annotations

import pytest
from nestq_spec import ConfigError

from {{ cookiecutter.package_name }}.config import {{ P }}Config, load_config


def test_defaults_load_from_an_empty_environment() -> None:
    config = load_config(env={})
    assert config == {{ P }}Config()
    assert config.concurrency >= 1


def test_environment_is_read_and_pinned_values_win() -> None:
    env = {
        "NESTQ_{{ NS }}__CONCURRENCY": "3",
        "NESTQ_{{ NS }}__URL": "{{ cookiecutter.__driver_name }}://elsewhere:1",
    }
    assert load_config(env=env).concurrency == 3
    assert load_config({"concurrency": 7}, env=env).concurrency == 7
    assert load_config({"concurrency": 7}, env=env).url == "{{ cookiecutter.__driver_name }}://elsewhere:1"


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="NESTQ_{{ NS }}__CONCURRENCY"):
        load_config(env={"NESTQ_{{ NS }}__CONCURRENCY": "zero"})


def test_backoff_grows_and_is_capped() -> None:
    config = load_config({"backoff_base": 1.0, "backoff_cap": 3.0}, env={})
    assert [config.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]


def test_a_password_in_the_url_is_not_shown() -> None:
    config = load_config({"url": "{{ cookiecutter.__driver_name }}://user:hunter2@host:1"}, env={})
    assert "hunter2" not in repr(config)
