"""Bad input: each mistake gives one clear error, and the password never shows."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import pytest
from nestq_spec import ConfigError

from nestq_rabbitmq.config import load_config
from nestq_rabbitmq.connection import RabbitmqConnection, RabbitmqUnavailableError


def _push(url: str, **pinned: object) -> None:
    async def go() -> None:
        connection = RabbitmqConnection(load_config({"url": url, "connect_timeout": 5.0, **pinned}, env={}))
        try:
            await connection.push_json("q", {"n": 1})
        finally:
            await connection.aclose()

    asyncio.run(go())


def test_a_url_that_is_not_amqp_names_the_variable_and_hides_the_password() -> None:
    with pytest.raises(ConfigError, match="NESTQ_RABBITMQ__URL") as caught:
        load_config({"url": "http://guest:s3cret@localhost:5672/"}, env={})
    assert "s3cret" not in str(caught.value)
    assert "not an AMQP URL" in str(caught.value)


def test_a_malformed_amqp_url_is_one_clear_error() -> None:
    with pytest.raises((ConfigError, RabbitmqUnavailableError)) as caught:
        _push("amqp://guest:s3cret@localhost:notaport/")
    assert "NESTQ_RABBITMQ__URL" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_an_unreachable_broker_is_one_clear_error() -> None:
    with socket_port() as port, pytest.raises(RabbitmqUnavailableError, match="cannot connect to RabbitMQ") as caught:
        _push(f"amqp://guest:s3cret@127.0.0.1:{port}/")
    assert "s3cret" not in str(caught.value)
    assert "***" in str(caught.value)


def test_wrong_credentials_are_one_clear_error(broker_url: str) -> None:
    parts = urlsplit(broker_url)
    wrong = urlunsplit((parts.scheme, f"nobody:s3cret@{parts.hostname}:{parts.port or 5672}", parts.path, "", ""))
    with pytest.raises(RabbitmqUnavailableError, match="refused the user name or password") as caught:
        _push(wrong)
    assert "s3cret" not in str(caught.value)


def test_a_bad_prefix_and_queue_type_name_their_variables() -> None:
    with pytest.raises(ConfigError, match="NESTQ_RABBITMQ__PREFIX"):
        load_config({"prefix": "amq.mine"}, env={})
    with pytest.raises(ConfigError, match="NESTQ_RABBITMQ__QUEUE_TYPE"):
        load_config(env={"NESTQ_RABBITMQ__QUEUE_TYPE": "stream"})


class socket_port:  # noqa: N801 - used as a context manager, reads like a function
    """A loopback port nothing listens on (bound, then released when the block ends)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])  # bound but not listening: connections are refused

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_a_queue_declared_with_other_arguments_is_a_readable_error(vhost_url: str) -> None:
    from nestq_rabbitmq.connection import TopologyError

    async def go() -> str:
        plain = RabbitmqConnection(load_config({"url": vhost_url, "prefix": "nqtopo", "max_priority": 0}, env={}))
        other = RabbitmqConnection(load_config({"url": vhost_url, "prefix": "nqtopo", "max_priority": 10}, env={}))
        try:
            await plain.push_json("mail", {"n": 1})
            with pytest.raises(TopologyError) as caught:
                await other.push_json("mail", {"n": 2})
            await plain.push_json("mail", {"n": 3})  # the first declaration still works
            channel = await (await plain.connection()).channel()
            for name in ("nqtopo.q.mail", "nqtopo.dead.mail"):
                await channel.queue_delete(name)
            return str(caught.value)
        finally:
            await plain.aclose()
            await other.aclose()

    message = asyncio.run(go())
    assert "'nqtopo.q.mail' already exists with other arguments" in message
    assert "x-max-priority" in message
    assert "PRECONDITION_FAILED" in message
