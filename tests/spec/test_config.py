"""Dual-path configuration: pinned > NESTQ_<NS>__<KEY> > default; bad values name the variable; secrets hidden."""

from __future__ import annotations

import dataclasses
import re

import pytest

from nestq_spec import ConfigError, describe_settings, env_var, load_settings, redact, setting, settings


@settings("mail")
class MailSettings:
    host: str = setting(default="localhost", help="SMTP host")
    port: int = setting(default=25, help="SMTP port", min=1, max=65535)
    timeout: float = setting(default=5.0, help="seconds per send", min=0)
    tls: bool = setting(default=False, help="use STARTTLS")
    mode: str = setting(default="smtp", help="how to send", choices=("smtp", "api"))
    password: str = setting(default="", help="SMTP password", secret=True)
    pin: int = setting(default=1234, help="a secret number", secret=True, min=0, max=9999)
    url: str = setting(default="smtp://mailer:hunter2@mail.example.com:25", help="the relay, password inside")
    retries: int | None = setting(default=None, help="retries, or None for the relay's default", min=0)


@settings("cache")
class CacheSettings:
    url: str = setting(default="redis://localhost:6379/0", help="cache URL",
                       choices=("redis://localhost:6379/0", "redis://:pw@cache:6379/0"))


def test_env_var_names() -> None:
    assert env_var(MailSettings, "port") == "NESTQ_MAIL__PORT"
    assert env_var(MailSettings, "timeout") == "NESTQ_MAIL__TIMEOUT"
    assert env_var(CacheSettings, "url") == "NESTQ_CACHE__URL"


def test_defaults_with_an_empty_environment() -> None:
    loaded = load_settings(MailSettings, None, env={})
    assert loaded == MailSettings()
    assert (loaded.host, loaded.port, loaded.timeout, loaded.tls, loaded.retries) == ("localhost", 25, 5.0, False, None)


def test_the_environment_overrides_defaults() -> None:
    env = {
        "NESTQ_MAIL__HOST": "smtp.internal",
        "NESTQ_MAIL__PORT": " 2525 ",
        "NESTQ_MAIL__TIMEOUT": "0.5",
        "NESTQ_MAIL__TLS": "yes",
        "NESTQ_MAIL__MODE": "api",
        "NESTQ_MAIL__RETRIES": "3",
        "NESTQ_OTHER__HOST": "ignored",
    }
    loaded = load_settings(MailSettings, None, env=env)
    assert (loaded.host, loaded.port, loaded.timeout, loaded.tls, loaded.mode, loaded.retries) == (
        "smtp.internal", 2525, 0.5, True, "api", 3
    )
    assert load_settings(MailSettings, None, env={"NESTQ_MAIL__RETRIES": "none"}).retries is None


@pytest.mark.parametrize(("text", "value"), [("1", True), ("true", True), ("ON", True), ("0", False), ("off", False),
                                             ("No", False)])
def test_booleans_from_the_environment(text: str, value: bool) -> None:
    assert load_settings(MailSettings, None, env={"NESTQ_MAIL__TLS": text}).tls is value


def test_os_environ_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTQ_MAIL__PORT", "587")
    assert load_settings(MailSettings).port == 587


def test_pinned_wins_over_env_which_wins_over_default() -> None:
    env = {"NESTQ_MAIL__PORT": "2525", "NESTQ_MAIL__HOST": "from-env"}
    loaded = load_settings(MailSettings, {"port": 465}, env=env)
    assert loaded.port == 465  # pinned beats env
    assert loaded.host == "from-env"  # env beats default
    assert loaded.timeout == 5.0  # default


def test_a_pinned_instance_is_used_as_is_ignoring_env() -> None:
    pinned = MailSettings(host="pinned", port=2)
    loaded = load_settings(MailSettings, pinned, env={"NESTQ_MAIL__HOST": "env", "NESTQ_MAIL__TLS": "true"})
    assert loaded is pinned


@pytest.mark.parametrize(
    ("var", "text", "expected"),
    [
        ("NESTQ_MAIL__PORT", "abc", "NESTQ_MAIL__PORT='abc' is invalid: expected an integer"),
        ("NESTQ_MAIL__PORT", "2.5", "NESTQ_MAIL__PORT='2.5' is invalid: expected an integer"),
        ("NESTQ_MAIL__PORT", "0", "NESTQ_MAIL__PORT=0 (from the environment) is below the minimum 1"),
        ("NESTQ_MAIL__PORT", "70000", "NESTQ_MAIL__PORT=70000 (from the environment) is above the maximum 65535"),
        ("NESTQ_MAIL__TIMEOUT", "soon", "NESTQ_MAIL__TIMEOUT='soon' is invalid: expected a number"),
        ("NESTQ_MAIL__TIMEOUT", "nan", "NESTQ_MAIL__TIMEOUT=nan (from the environment) is not a finite number"),
        ("NESTQ_MAIL__TIMEOUT", "-1", "NESTQ_MAIL__TIMEOUT=-1.0 (from the environment) is below the minimum 0"),
        ("NESTQ_MAIL__TLS", "maybe", "NESTQ_MAIL__TLS='maybe' is invalid: expected one of true/false, 1/0, yes/no"),
        ("NESTQ_MAIL__MODE", "pigeon", "NESTQ_MAIL__MODE='pigeon' (from the environment) is not one of smtp, api"),
        ("NESTQ_MAIL__RETRIES", "many", "NESTQ_MAIL__RETRIES='many' is invalid: expected an integer"),
        ("NESTQ_MAIL__RETRIES", "-1", "NESTQ_MAIL__RETRIES=-1 (from the environment) is below the minimum 0"),
    ],
)
def test_bad_env_values_fail_naming_the_variable_and_value(var: str, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(MailSettings, None, env={var: text})
    assert expected in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("pinned", "expected"),
    [
        ({"port": "25"}, "NESTQ_MAIL__PORT='25' (pinned in code) is not a valid int"),
        ({"port": True}, "NESTQ_MAIL__PORT=True (pinned in code) is not a valid int"),
        ({"tls": 1}, "NESTQ_MAIL__TLS=1 (pinned in code) is not a valid bool"),
        ({"timeout": float("inf")}, "NESTQ_MAIL__TIMEOUT=inf (pinned in code) is not a finite number"),
        ({"retries": "3"}, "NESTQ_MAIL__RETRIES='3' (pinned in code) is not a valid int or None"),
        ({"nope": 1, "port": 2}, "MailSettings has no setting(s) nope; known: host, port, timeout, tls, mode"),
    ],
)
def test_bad_pinned_values_fail_naming_the_setting(pinned: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(MailSettings, pinned, env={})
    assert expected in str(info.value)


def test_a_pinned_instance_is_checked_too() -> None:
    with pytest.raises(ConfigError, match=re.escape("NESTQ_MAIL__PORT=0 (pinned in code) is below the minimum 1")):
        load_settings(MailSettings, MailSettings(port=0))


def test_a_bad_default_fails_when_the_class_is_declared() -> None:
    with pytest.raises(ConfigError, match=re.escape("NESTQ_BROKEN__PORT=0 (default) is below the minimum 1")):

        @settings("broken")
        class Broken:
            port: int = setting(default=0, min=1)


def test_bad_namespace_and_non_settings_class() -> None:
    with pytest.raises(ConfigError, match="settings namespace '9lives' must be an identifier"):
        settings("9lives")
    class Plain:
        pass

    with pytest.raises(ConfigError, match="Plain is not a @settings class"):
        load_settings(Plain)


def test_settings_are_frozen() -> None:
    loaded = load_settings(MailSettings, None, env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.port = 1  # type: ignore[misc]


# -- secrets -----------------------------------------------------------------------------------------------------

SECRETS = ("s3cret-pass", "hunter2", "4321", "topsecret")


def _assert_hidden(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked in {text!r}"


def test_secrets_never_appear_in_repr_or_str() -> None:
    loaded = load_settings(MailSettings, {"password": "s3cret-pass", "pin": 4321}, env={})
    assert loaded.password == "s3cret-pass"
    assert loaded.pin == 4321
    for text in (repr(loaded), str(loaded), f"{loaded}", repr([loaded])):
        _assert_hidden(text)
    assert "password='***'" in repr(loaded)
    assert "pin='***'" in repr(loaded)
    assert "url='smtp://mailer:***@mail.example.com:25'" in repr(loaded)
    assert "host='localhost'" in repr(loaded)


def test_secrets_never_appear_in_error_messages() -> None:
    cases = [
        ({"NESTQ_MAIL__PIN": "43x21"}, "NESTQ_MAIL__PIN='***' is invalid: expected an integer", "43x21"),
        ({"NESTQ_MAIL__PIN": "43210"}, "NESTQ_MAIL__PIN='***' (from the environment) is above the maximum 9999",
         "43210"),
        ({"NESTQ_CACHE__URL": "redis://admin:topsecret@cache:6379/0"},
         "NESTQ_CACHE__URL='redis://admin:***@cache:6379/0' (from the environment) is not one of", "topsecret"),
    ]
    for env, expected, secret in cases:
        cls = CacheSettings if "CACHE" in next(iter(env)) else MailSettings
        with pytest.raises(ConfigError) as info:
            load_settings(cls, None, env=env)
        assert expected in str(info.value)
        assert secret not in str(info.value)
    with pytest.raises(ConfigError) as pinned:
        load_settings(MailSettings, {"pin": 99999}, env={})
    assert "NESTQ_MAIL__PIN='***' (pinned in code) is above the maximum 9999" in str(pinned.value)
    assert "99999" not in str(pinned.value)


def test_describe_settings_redacts_defaults() -> None:
    rows = {row.name: row for row in describe_settings(MailSettings)}
    assert rows["port"].env_var == "NESTQ_MAIL__PORT"
    assert rows["port"].type == "int"
    assert rows["port"].default == "25"
    assert rows["port"].help == "SMTP port"
    assert rows["password"].default == "'***'"
    assert rows["url"].default == "'smtp://mailer:***@mail.example.com:25'"
    _assert_hidden(repr(rows))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("redis://:topsecret@host:6379/0", "'redis://:***@host:6379/0'"),
        ("redis://user:topsecret@host", "'redis://user:***@host'"),
        ("amqp://guest:topsecret@rabbit//", "'amqp://guest:***@rabbit//'"),
        ("redis://user:top@secret@host", "'redis://user:***@host'"),  # an unescaped '@' in the password
        ("redis://user:top/secret@host", "'redis://user:***@host'"),  # an unescaped '/' in the password
        ("postgres://db/app?user=u&password=topsecret&ssl=1", "'postgres://db/app?user=u&password=***&ssl=1'"),
        ("https://api.example.com/v1?token=topsecret", "'https://api.example.com/v1?token=***'"),
        ("redis://localhost:6379/0", "'redis://localhost:6379/0'"),
        ({"url": "redis://u:topsecret@h", "mail": "a@b"}, "{'url': 'redis://u:***@h', 'mail': 'a@b'}"),
        (42, "42"),
    ],
)
def test_redact(value: object, expected: str) -> None:
    assert redact(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "redis://user:top/secret@host:6379/0",  # unescaped '/': a URL parser ends the netloc there
        "redis://user:top#secret@host:6379/0",  # unescaped '#': a URL parser starts the fragment there
        "redis://user:top?secret@host:6379/0",  # unescaped '?': a URL parser starts the query there
        "redis://user:top[secret@host:6379/0",  # unescaped '[': urllib raises ValueError on it
        "redis://:top@sec/ret#x?y@host",  # several of them and more than one '@'
        "user:topsecret@host:6379",  # no scheme
        "rediss://user:top secret@host",  # a space, in a value that is one URL
        "redis://user:top'secret@host",  # a quote, which changes how repr() quotes the string
    ],
)
def test_redact_masks_the_raw_userinfo_up_to_the_last_at(value: str) -> None:
    for shown in (redact(value), redact(value, as_repr=False), redact({"url": value}), redact([value])):
        assert "top" not in shown, shown
        assert "ret" not in shown, shown
        assert "***@host" in shown


def test_redact_unquoted_and_free_text() -> None:
    assert redact("redis://u:topsecret@h:1/0", as_repr=False) == "redis://u:***@h:1/0"
    assert redact("redis://h:1/0", as_repr=False) == "redis://h:1/0"
    text = "connect redis://u:top/secret@h failed\nmail a@b at 12:00"
    assert redact(text, as_repr=False) == "connect redis://u:***@h failed\nmail a@b at 12:00"

    class Holder:
        def __repr__(self) -> str:
            return "Holder(url='redis://u:top#secret@h:1')"

    assert redact(Holder()) == "Holder(url='redis://u:***@h:1')"


def test_is_url_setting_by_marker_name_or_default() -> None:
    from nestq_spec.config import is_url_setting

    @settings("urls")
    class Urls:
        """Settings of every shape a URL setting takes, and some that are not URLs."""

        url: str = setting(default="", help="named url")
        endpoint_url: str = setting(default="", help="named ..._url, empty default")
        dsn: str = setting(default="postgresql://localhost/db", help="named dsn")
        upstream: str = setting(default="", url=True, help="marked")
        store: str = setting(default="redis://localhost:6379/0", help="a URL default")
        token: str = setting(default="", secret=True, help="secret: hidden whole, not a URL")
        curl: str = setting(default="", help="a name ending in url, not in _url")
        mode: str = setting(default="a", choices=("a", "b"), help="choices")

    found = {f.name for f in dataclasses.fields(Urls) if is_url_setting(f)}
    assert found == {"url", "endpoint_url", "dsn", "upstream", "store"}
