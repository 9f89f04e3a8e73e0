"""Bad input gives one clear error naming the problem, with the password masked; queue names map injectively."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid

import nats
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.js.api import RetentionPolicy, StreamConfig
from nestq_spec import ConfigError

from nestq_nats.config import load_config
from nestq_nats.connection import NatsConnection, NatsUnavailableError
from nestq_nats.layout import Layout, queue_of_token, queue_token
from nestq_nats.server import NatsServer, free_port, nats_server_binary, server_answers

LOCAL = "nats://127.0.0.1:4222"


def _need_local() -> None:
    if not server_answers("127.0.0.1", 4222):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no NATS server answers on 127.0.0.1:4222")
        pytest.skip("no NATS server on 127.0.0.1:4222")


def test_a_url_that_is_not_nats_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"NESTQ_NATS__URL=.*http://u:\*\*\*@h.*not a NATS URL") as caught:
        load_config({"url": "http://u:hunter2@h:4222"})
    assert "hunter2" not in str(caught.value)


def test_a_bad_stream_prefix_is_refused() -> None:
    with pytest.raises(ConfigError, match="NESTQ_NATS__STREAM_PREFIX"):
        load_config({"stream_prefix": "a.b"})


def test_an_unreachable_server_is_one_error_with_the_password_masked() -> None:
    url = f"nats://user:hunter2@127.0.0.1:{free_port()}"

    async def scenario() -> None:
        connection = NatsConnection(load_config({"url": url, "connect_timeout": 1.0}))
        with pytest.raises(NatsUnavailableError, match=r"cannot reach NATS at nats://user:\*\*\*@127\.0\.0\.1") as e:
            await connection.push_json("q", {"n": 1})
        assert "hunter2" not in str(e.value)
        assert "NESTQ_NATS__URL" in str(e.value)

    asyncio.run(scenario())


@pytest.mark.skipif(nats_server_binary() is None and os.environ.get("CI", "").lower() != "true",
                    reason="no nats-server binary for a server with credentials")
def test_wrong_credentials_are_a_config_error_with_the_password_masked() -> None:
    with NatsServer(user="nestq", password="right-one") as server:
        wrong = f"nats://nestq:hunter2@127.0.0.1:{server.port}"

        async def scenario() -> None:
            connection = NatsConnection(load_config({"url": wrong}))
            with pytest.raises(ConfigError, match="refused the credentials") as caught:
                await connection.push_json("q", {"n": 1})
            assert "hunter2" not in str(caught.value)
            right = NatsConnection(load_config({"url": server.url, "stream_prefix": "creds"}))
            await right.push_json("q", {"n": 1})  # the right password works on the same server
            await right.aclose()

        asyncio.run(scenario())


def test_an_incompatible_existing_stream_is_a_clear_error_not_a_reconfiguration() -> None:
    _need_local()
    prefix = f"nqtest-{uuid.uuid4().hex[:8]}"
    layout = Layout(prefix)

    async def scenario() -> None:
        client = await nats.connect(LOCAL)
        js = client.jetstream()
        await js.add_stream(StreamConfig(name=layout.jobs_stream, subjects=[layout.jobs_subjects],
                                         retention=RetentionPolicy.LIMITS))
        try:
            connection = NatsConnection(load_config({"url": LOCAL, "stream_prefix": prefix}))
            with pytest.raises(ConfigError, match=r"exists with retention limits \(nestq needs workqueue\)"):
                await connection.push_json("q", {"n": 1})
            info = await js.stream_info(layout.jobs_stream)
            assert info.config.retention == RetentionPolicy.LIMITS  # left as it was
        finally:
            for stream in (layout.jobs_stream, layout.dead_stream):
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.delete_stream(stream)
            await client.close()

    asyncio.run(scenario())


def test_booting_twice_on_the_same_streams_is_idempotent() -> None:
    _need_local()
    prefix = f"nqtest-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        for _ in range(2):
            connection = NatsConnection(load_config({"url": LOCAL, "stream_prefix": prefix}))
            await connection.push_json("q", {"n": 1})
            await connection.aclose()
        client = await nats.connect(LOCAL)
        js = client.jetstream()
        info = await js.stream_info(Layout(prefix).jobs_stream)
        assert info.state.messages == 2
        for stream in (Layout(prefix).jobs_stream, Layout(prefix).dead_stream):
            await js.delete_stream(stream)
        await client.close()

    asyncio.run(scenario())


@given(st.text(alphabet="abcXYZ019_-.:~", min_size=1, max_size=60), st.text(alphabet="abcXYZ019_-.:", min_size=1,
                                                                            max_size=60))
def test_queue_names_map_to_subject_tokens_injectively(a: str, b: str) -> None:
    ta, tb = queue_token(a), queue_token(b)
    assert set(ta) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    assert queue_of_token(ta) == a
    assert (ta == tb) == (a == b)


def test_a_long_queue_name_gets_a_digest_token() -> None:
    name = "x." * 60
    token = queue_token(name)
    assert token.startswith("_h")
    assert len(token) == 66
    assert queue_of_token(token) is None
    assert queue_token("a.b") != queue_token("a:b") != queue_token("a_2eb")
