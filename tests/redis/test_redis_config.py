"""Unit tests of the Redis driver's settings: env and pinned values, relations, secrets kept out of sight."""

from __future__ import annotations

import logging

import pytest
from nestq_redis import RedisConfig, RedisConnection, RedisQueueModule, display_url, load_config

from nestq_spec import Application, ConfigError, describe_settings, module

SECRET = "hunter2-s3cret"


def test_defaults() -> None:
    config = load_config(env={})
    assert config.url == "redis://127.0.0.1:6379/0"
    assert config.key_prefix == "nestq"
    assert config.effective_heartbeat() == pytest.approx(config.visibility_timeout / 3)
    assert config.effective_sweep() <= config.visibility_timeout / 4


def test_env_then_pinned_precedence() -> None:
    env = {"NESTQ_REDIS__CONCURRENCY": "32", "NESTQ_REDIS__VISIBILITY_TIMEOUT": "12.5", "NESTQ_REDIS__KEY_PREFIX": "e"}
    config = load_config({"key_prefix": "pinned"}, env=env)
    assert (config.concurrency, config.visibility_timeout, config.key_prefix) == (32, 12.5, "pinned")
    whole = RedisConfig(concurrency=3)
    assert load_config(whole, env=env) is whole


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="NESTQ_REDIS__CONCURRENCY"):
        load_config(env={"NESTQ_REDIS__CONCURRENCY": "many"})
    with pytest.raises(ConfigError, match="NESTQ_REDIS__CLAIM_BATCH"):
        load_config(env={"NESTQ_REDIS__CLAIM_BATCH": "0"})


def test_relations_checked_at_boot_naming_both_variables() -> None:
    with pytest.raises(ConfigError, match=r"NESTQ_REDIS__HEARTBEAT_INTERVAL.*NESTQ_REDIS__VISIBILITY_TIMEOUT"):
        load_config({"visibility_timeout": 1.0, "heartbeat_interval": 1.0}, env={})
    with pytest.raises(ConfigError, match=r"NESTQ_REDIS__BACKOFF_CAP.*NESTQ_REDIS__BACKOFF_BASE"):
        load_config({"backoff_base": 10.0, "backoff_cap": 1.0}, env={})
    with pytest.raises(ConfigError, match=r"NESTQ_REDIS__SOCKET_TIMEOUT.*NESTQ_REDIS__POLL_TIMEOUT"):
        load_config({"poll_timeout": 5.0, "socket_timeout": 5.0}, env={})
    with pytest.raises(ConfigError, match="scheme"):
        load_config({"url": "http://example.com"}, env={})
    with pytest.raises(ConfigError, match="NESTQ_REDIS__KEY_PREFIX"):
        load_config({"key_prefix": "a{b}"}, env={})
    # A heartbeat of 0 means "a third of the visibility timeout", always valid.
    assert load_config({"visibility_timeout": 0.3}, env={}).effective_heartbeat() == pytest.approx(0.1)


def test_relation_error_at_application_boot() -> None:
    root = module(imports=[RedisQueueModule.for_root({"visibility_timeout": 1.0, "heartbeat_interval": 2.0})])(
        type("BadApp", (), {})
    )
    with pytest.raises(ConfigError, match="NESTQ_REDIS__HEARTBEAT_INTERVAL"):
        Application.create(root)


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{SECRET}@example.com:6379/0",
        f"rediss://user:{SECRET}@example.com:6380/2",
        f"redis://default:{SECRET}@[::1]:6379",
    ],
)
def test_url_password_never_shown(url: str, caplog: pytest.LogCaptureFixture) -> None:
    config = load_config({"url": url}, env={})
    assert SECRET not in repr(config)
    assert SECRET not in display_url(url)
    assert SECRET not in repr(RedisConnection(config))
    assert SECRET not in repr(RedisQueueModule.for_root({"url": url}))
    with pytest.raises(ConfigError) as info:
        load_config({"url": url, "concurrency": 0}, env={})
    assert SECRET not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config({"url": url, "visibility_timeout": 1.0, "heartbeat_interval": 5.0}, env={})
    assert SECRET not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(env={"NESTQ_REDIS__URL": url.replace("redis", "ftp", 1)})
    assert SECRET not in str(info.value)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("nestq.redis").info("url %s", display_url(url))
    assert SECRET not in caplog.text


def test_password_setting_is_secret() -> None:
    config = load_config(env={"NESTQ_REDIS__PASSWORD": SECRET})
    assert config.password == SECRET
    assert SECRET not in repr(config)
    assert SECRET not in repr(RedisQueueModule.for_root({"password": SECRET}))
    assert all(SECRET not in row.default for row in describe_settings(RedisConfig))


def test_query_string_password_refused_without_echo() -> None:
    with pytest.raises(ConfigError, match="query string") as info:
        load_config({"url": f"redis://example.com/0?password={SECRET}"}, env={})
    assert SECRET not in str(info.value)
    assert SECRET not in display_url(f"redis://example.com/0?password={SECRET}&db=1")


def test_backoff_is_exponential_capped_and_never_below_plain() -> None:
    config = load_config({"backoff_base": 0.5, "backoff_cap": 3.0, "backoff_jitter": 0.25}, env={})
    assert [config.backoff(a) for a in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    for attempt in range(1, 8):
        plain = config.backoff(attempt)
        assert plain <= config.backoff(attempt, 0.999) <= min(3.0, plain * 1.25)
    assert config.backoff(10_000) == 3.0


def test_every_setting_documented() -> None:
    rows = describe_settings(RedisConfig)
    assert {r.name for r in rows} >= {
        "url", "key_prefix", "visibility_timeout", "heartbeat_interval", "max_attempts", "backoff_base",
        "backoff_cap", "concurrency", "claim_batch", "shutdown_grace", "dead_letter_retention", "poll_timeout",
    }
    assert all(r.help for r in rows)
