"""The example app (tests/example_app): a producer-only API and a worker, on either driver, by one line."""

from __future__ import annotations

import asyncio
import difflib
import importlib
import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

import pytest

from nestq_spec import Application, CancellationToken, JobProducer, QueueNameError, routes
from tests.example_app import features
from tests.example_app.features import Outbox, SignupService, WelcomeEmail, WelcomeEmails

from ._helpers import eventually, within

APP_DIR = Path(features.__file__).parent
_users = itertools.count()


def _app_module(driver: str) -> ModuleType:
    if driver == "memory" and importlib.util.find_spec("nestq_memory") is None:
        pytest.skip("the reference memory driver (nestq_memory) is not installed")
    return importlib.import_module({"fake": "tests.example_app.app", "memory": "tests.example_app.app_memory"}[driver])


def test_the_two_apps_differ_in_exactly_the_driver_line() -> None:
    fake = (APP_DIR / "app.py").read_text().splitlines()
    memory = (APP_DIR / "app_memory.py").read_text().splitlines()
    changed = [line for line in difflib.ndiff(fake, memory) if line[:2] in ("- ", "+ ")]
    assert len(changed) == 2, changed
    assert changed[0].startswith("- from tests.example_app.fake_driver import")
    assert changed[1].startswith("+ from nestq_memory import")


@pytest.fixture(params=["fake", "memory"])
def app(request: pytest.FixtureRequest) -> ModuleType:
    return _app_module(request.param)


def test_the_api_is_producer_only(app: ModuleType) -> None:
    api = Application.create(app.ApiModule)
    assert api.transports == ()
    producer = api.container.get(JobProducer)
    assert type(producer).__module__.startswith(("tests.example_app.fake_driver", "nestq_memory"))
    assert api.container.get(SignupService).producer is producer
    assert WelcomeEmails not in api.container.reachable  # imported in this process, but not in the API's graph
    assert routes(api.container) == {}


def test_the_worker_contributes_one_transport_and_routes_the_feature(app: ModuleType) -> None:
    worker = Application.create(app.WorkerModule)
    assert len(worker.transports) == 1
    table = routes(worker.container)
    assert [m.qualname for m in table[features.SIGNUPS]] == ["WelcomeEmails.send_welcome"]
    assert table[features.SIGNUPS][0].job_type is WelcomeEmail


@pytest.mark.asyncio
async def test_a_signup_in_the_api_is_emailed_by_the_worker(app: ModuleType) -> None:
    api = Application.create(app.ApiModule)
    worker = Application.create(app.WorkerModule)
    outbox = worker.container.get(Outbox)
    cancel = CancellationToken()
    serving = asyncio.create_task(worker.serve(cancel, shutdown_timeout=10))
    try:
        user = f"user{next(_users)}@example.com"
        await api.container.get(SignupService).sign_up(user, "Ada")
        await eventually(lambda: (user, "Welcome, Ada!", 1) in outbox.sent, f"the worker to email {user}")
        # The worker app can enqueue as well: it imports the same producer module.
        other = f"user{next(_users)}@example.com"
        await worker.container.get(SignupService).sign_up(other, "Grace")
        await eventually(lambda: (other, "Welcome, Grace!", 1) in outbox.sent, f"the worker to email {other}")
    finally:
        cancel.cancel()
        await within(serving, "the worker to stop after cancel")


@pytest.mark.asyncio
async def test_the_api_refuses_bad_pushes_before_they_reach_the_driver(app: ModuleType) -> None:
    producer = Application.create(app.ApiModule).container.get(JobProducer)
    with pytest.raises(TypeError, match=r"job of type WelcomeEmail cannot become JSON: \$\.name is a set"):
        await producer.push(features.SIGNUPS, WelcomeEmail("a@b", {"not", "json"}))  # type: ignore[arg-type]
    with pytest.raises(QueueNameError, match="queue name is empty"):
        await producer.push("", WelcomeEmail("a@b", "A"))
