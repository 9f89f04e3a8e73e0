"""The operator CLI against the real broker: depth, dead list/show/redrive/purge."""

from __future__ import annotations

import asyncio
import json

import pytest

from nestq_rabbitmq import RabbitmqAdmin, RabbitmqConnection
from nestq_rabbitmq.cli import main
from nestq_rabbitmq.config import load_config
from nestq_rabbitmq.connection import ATTEMPTS_HEADER, ERROR_HEADER


def test_dead_letters_listed_shown_redriven_and_purged(vhost_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--url", vhost_url, "--prefix", "nqcli"]
    config = load_config({"url": vhost_url, "prefix": "nqcli"})  # queue type etc. as the CLI reads them

    async def plant() -> None:
        connection = RabbitmqConnection(config)
        try:
            for n in range(3):
                await connection.publish_dead("mail", f'{{"v":1,"payload":{{"n":{n}}}}}'.encode(),
                                              {ATTEMPTS_HEADER: 3, ERROR_HEADER: f"ValueError: boom {n}"}, f"id-{n}")
        finally:
            await connection.aclose()

    async def depth() -> tuple[int, int]:
        connection = RabbitmqConnection(config)
        try:
            found = await RabbitmqAdmin(connection).depth("mail")
            return found.ready, found.dead
        finally:
            await connection.aclose()

    asyncio.run(plant())
    assert main([*base, "--json", "depth", "mail"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"queue": "mail", "ready": 0, "delayed": 0, "dead": 3}]
    assert main([*base, "--json", "dead", "list", "mail"]) == 0
    letters = json.loads(capsys.readouterr().out)
    assert [(d["id"], d["attempts"], d["error"]) for d in letters] == [
        (f"id-{n}", 3, f"ValueError: boom {n}") for n in range(3)
    ]
    assert main([*base, "dead", "show", "mail", "id-1"]) == 0
    assert "boom 1" in capsys.readouterr().out
    assert main([*base, "dead", "redrive", "mail"]) == 2  # neither ids nor --all
    capsys.readouterr()
    assert main([*base, "dead", "redrive", "mail", "id-0", "--yes"]) == 0
    assert asyncio.run(depth()) == (1, 2)
    assert main([*base, "dead", "purge", "mail", "--all", "--yes"]) == 0
    assert "2 dead letter(s) purged" in capsys.readouterr().out
    assert asyncio.run(depth()) == (1, 0)


def test_an_unreachable_broker_is_one_line_without_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", "amqp://guest:s3cret@127.0.0.1:1/", "depth", "q"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect to RabbitMQ" in err
    assert "s3cret" not in err
