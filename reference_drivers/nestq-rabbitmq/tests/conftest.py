"""Shared fixtures: the broker the tests use, a virtual host of their own, and rabbitmqctl when it works."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from nestq_rabbitmq.harness import LOCAL_URL, rabbitmqctl


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def broker_url() -> str:
    """``NESTQ_RABBITMQ__URL`` or the local broker; a missing broker skips, except with ``CI=true`` (an error)."""
    url = os.environ.get("NESTQ_RABBITMQ__URL") or LOCAL_URL
    if not _answers(url):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but no RabbitMQ answers at {urlsplit(url).hostname}:{urlsplit(url).port or 5672}")
        pytest.skip("no RabbitMQ broker answers (set NESTQ_RABBITMQ__URL)")
    return url


@pytest.fixture(scope="session")
def ctl() -> bool:
    """Whether ``rabbitmqctl`` administers the broker (virtual hosts, closing connections)."""
    return rabbitmqctl("list_vhosts", timeout=30) is not None


@pytest.fixture
def vhost_url(broker_url: str, ctl: bool) -> Iterator[str]:
    """A URL to a virtual host of the test's own, deleted afterwards (the broker's URL without rabbitmqctl)."""
    if not ctl:
        yield broker_url
        return
    parts = urlsplit(broker_url)
    vhost = f"nqtest-{uuid.uuid4().hex[:10]}"
    assert rabbitmqctl("add_vhost", vhost) is not None
    assert rabbitmqctl("set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*") is not None
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + vhost, "", ""))
    finally:
        rabbitmqctl("delete_vhost", vhost)
