"""The embedded SQS server: it keeps connections open, and its long polls see what SQS's would, when SQS would."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from nestq_sqs.connection import shared_session
from nestq_sqs.harness import SqsHarness


@pytest_asyncio.fixture
async def client(sqs: SqsHarness) -> AsyncIterator[Any]:
    async with shared_session().create_client("sqs", region_name="us-east-1", endpoint_url=sqs.address) as made:
        yield made


def test_one_connection_serves_request_after_request(sqs: SqsHarness) -> None:
    if sqs._server is None:
        pytest.skip("NESTQ_SQS__ENDPOINT_URL names another server")
    connection = http.client.HTTPConnection("127.0.0.1", sqs._server.port, timeout=10)
    try:
        for _ in range(3):
            connection.request("POST", "/", body="Action=ListQueues&Version=2012-11-05",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            assert response.getheader("Connection", "").lower() != "close"
    finally:
        connection.close()


@pytest.mark.asyncio
async def test_a_waiting_long_poll_gets_a_delayed_message_when_it_falls_due(client: Any) -> None:
    url = (await client.create_queue(QueueName=f"embedded-delay-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
    waiting = asyncio.ensure_future(client.receive_message(QueueUrl=url, WaitTimeSeconds=5))
    # The poll is under way before the message is sent, so the message falls due in the middle of its wait.
    done, _ = await asyncio.wait({waiting}, timeout=0.3)
    assert not done, f"the poll returned from an empty queue: {waiting.result()}"
    sent = time.monotonic()
    await client.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
    got = await asyncio.wait_for(waiting, 10)
    took = time.monotonic() - sent
    assert [m["Body"] for m in got.get("Messages", [])] == ["later"]
    # moto alone re-checks at each whole second of the poll: the message, due 1.3 s in, would arrive at 2 s.
    assert took < 1.55, f"the delayed message reached the waiting poll {took:.2f}s after it was sent (due at 1 s)"


@pytest.mark.asyncio
async def test_a_waiting_fifo_poll_gets_the_next_message_of_a_group_once_the_first_is_deleted(client: Any) -> None:
    url = (await client.create_queue(QueueName=f"embedded-group-{uuid.uuid4().hex[:8]}.fifo",
                                     Attributes={"FifoQueue": "true"}))["QueueUrl"]
    for body in ("first", "second"):
        await client.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g",
                                  MessageDeduplicationId=uuid.uuid4().hex)
    first = (await client.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=30))["Messages"][0]
    assert first["Body"] == "first"
    # The group is in flight: this poll may hand out nothing until the first message is deleted.
    waiting = asyncio.ensure_future(client.receive_message(QueueUrl=url, WaitTimeSeconds=10, VisibilityTimeout=30))
    done, _ = await asyncio.wait({waiting}, timeout=0.5)
    assert not done, f"the poll handed out a message of a group in flight: {waiting.result()}"
    deleted = time.monotonic()
    await client.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    got = await asyncio.wait_for(waiting, 15)
    took = time.monotonic() - deleted
    assert [m["Body"] for m in got.get("Messages", [])] == ["second"]
    # moto alone read the groups in flight once per poll: the freed group stayed blocked until the poll's end (10 s).
    assert took < 3.0, f"the waiting poll got the group's next message {took:.2f}s after the delete"


def test_the_server_goes_with_the_process_that_started_it_even_when_that_one_is_killed() -> None:
    script = ("import os, signal\nfrom nestq_sqs.embedded import EmbeddedSqs\n"
              "print(EmbeddedSqs().start().pid, flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    server = int(done.stdout.strip())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{server}").exists() and _state(server) != "Z":
        if time.monotonic() > deadline:
            os.kill(server, signal.SIGKILL)
            raise AssertionError(f"the embedded server {server} outlived the killed process that started it by 10 s")
        time.sleep(0.05)  # polling a process table with a deadline: a non-child's exit sends no signal here


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "gone"
