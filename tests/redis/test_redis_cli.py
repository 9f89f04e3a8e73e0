"""The operator CLI (``nestq redis ...``) on an embedded fakeredis seeded by the test."""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid

import pytest
from nestq_redis import RedisConfig, RedisConnection
from nestq_redis.cli import main, redis_command


def seeded() -> tuple[str, str, list[str]]:
    """A fakeredis URL and prefix holding queue ``mail`` (3 ready, 2 dead) and ``sms`` (1 delayed)."""
    url, prefix = f"fakeredis://{uuid.uuid4().hex[:8]}", "ops"

    async def seed() -> list[str]:
        conn = RedisConnection(RedisConfig(url=url, key_prefix=prefix))
        await conn.push_many_json("mail", [{"to": "a"}, {"to": "b"}, {"to": "c"}, {"to": "d"}, {"to": "e"}])
        await conn.push_json("sms", {"n": 1}, delay=3600)
        jobs = await conn.store.claim("mail", limit=2, lease_seconds=30)
        for job, error in zip(jobs, ["SMTPError: 550 no such user", "TimeoutError: slow"], strict=True):
            await conn.store.fail("mail", job.id, job.lease_token, error, retry_in=None, max_attempts=3)
        await conn.aclose()
        return [j.id for j in jobs]

    return url, prefix, asyncio.run(seed())


def run(capsys: pytest.CaptureFixture[str], url: str, prefix: str, *argv: str) -> tuple[int, str, str]:
    code = main(["--url", url, "--prefix", prefix, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_queues_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    url, prefix, _ = seeded()
    code, out, _ = run(capsys, url, prefix, "queues")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["QUEUE", "READY", "DELAYED", "RUNNING", "DEAD"]
    assert lines[2].split() == ["mail", "3", "0", "0", "2"]
    assert lines[3].split() == ["sms", "0", "1", "0", "0"]
    code, out, _ = run(capsys, url, prefix, "--json", "queues")
    assert json.loads(out)[0] == {"queue": "mail", "ready": 3, "delayed": 0, "running": 0, "dead": 2}


def test_dead_list_show_redrive_purge(capsys: pytest.CaptureFixture[str]) -> None:
    url, prefix, ids = seeded()
    code, out, _ = run(capsys, url, prefix, "dead", "list", "mail")
    assert code == 0
    assert "SMTPError: 550 no such user" in out
    assert "2 shown of 2" in out
    assert all(i in out for i in ids)

    code, out, _ = run(capsys, url, prefix, "dead", "show", "mail", ids[0])
    assert code == 0
    assert "SMTPError: 550 no such user" in out
    assert '"to": "a"' in out
    assert "attempts:  1" in out
    code, out, _ = run(capsys, url, prefix, "--json", "dead", "show", "mail", ids[1])
    shown = json.loads(out)
    assert shown["envelope"] == {"v": 1, "payload": {"to": "b"}}
    assert shown["error"] == "TimeoutError: slow"
    code, _, err = run(capsys, url, prefix, "dead", "show", "mail", "nope")
    assert code == 1
    assert "no dead letter nope" in err

    code, out, _ = run(capsys, url, prefix, "dead", "redrive", "mail", ids[0])
    assert code == 0
    assert "1 dead letter(s) of 1 id(s) given redriven" in out
    code, _, err = run(capsys, url, prefix, "dead", "purge", "mail")
    assert code == 2
    assert "--all" in err
    code, out, _ = run(capsys, url, prefix, "dead", "purge", "mail", "--all")
    assert code == 0
    assert "1 dead letter(s) purged" in out
    code, out, _ = run(capsys, url, prefix, "--json", "queues")
    assert json.loads(out)[0] == {"queue": "mail", "ready": 4, "delayed": 0, "running": 0, "dead": 0}
    code, out, _ = run(capsys, url, prefix, "dead", "list", "mail")
    assert "no dead letters on mail" in out


def test_unreachable_server_error_hides_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "redis://:pw-s3cret@127.0.0.1:1/0", "x", "queues")
    assert code == 2
    assert "pw-s3cret" not in err
    assert "***" in err
    assert "failed" in err


def test_bad_queue_name_and_config_errors(capsys: pytest.CaptureFixture[str]) -> None:
    url, prefix, _ = seeded()
    code, _, err = run(capsys, url, prefix, "dead", "list", "bad queue")
    assert code == 2
    assert "invalid queue name" in err
    code, _, err = run(capsys, "http://x", prefix, "queues")
    assert code == 2
    assert "scheme" in err


def test_nestq_entry_point_function_adds_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="nestq")
    redis_command(parser.add_subparsers(dest="command", required=True))
    url, prefix, _ = seeded()
    args = parser.parse_args(["redis", "--url", url, "--prefix", prefix, "queues"])
    assert args.func(args) == 0
    assert "mail" in capsys.readouterr().out
