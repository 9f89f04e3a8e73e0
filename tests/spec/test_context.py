"""current_job(): the job the current task runs, set by the handler, a clear error outside a job."""

from __future__ import annotations

import asyncio

import pytest

from nestq_spec import (
    ContainerBuilder,
    JobContext,
    JobMeta,
    NestqError,
    NoJobContextError,
    current_job,
    inventory,
    process,
    processor,
    wrap,
)

pytestmark = pytest.mark.usefixtures("sandbox")


def test_outside_a_job_it_raises_a_clear_error() -> None:
    with pytest.raises(NoJobContextError) as info:
        current_job()
    assert str(info.value) == (
        "current_job() was called outside a job; it only works inside a @process handler "
        "(or code it awaits) while a driver runs it"
    )
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, NestqError)


async def _audit() -> JobContext:
    """Code a handler awaits (a repository, say) sees the job too."""
    await asyncio.sleep(0)
    return current_job()


@pytest.mark.asyncio
async def test_inside_a_handler_and_what_it_awaits_and_reset_after() -> None:
    seen: dict[str, JobContext] = {}
    release = asyncio.Event()

    @processor
    class Audited:
        @process(queue="audited")
        async def run(self, job: str) -> None:
            await release.wait()
            seen[job] = await _audit()
            assert current_job() is seen[job]

    (method,) = [m for m in inventory() if m.provider_type is Audited]
    container = ContainerBuilder().provide(Audited).build()
    # Two jobs in flight at once on one loop: each task sees its own job.
    first = asyncio.create_task(method.handler(wrap("first"), container, JobMeta(attempt=2, job_id="id-1")))
    second = asyncio.create_task(method.handler(wrap("second"), container))
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert seen["first"] == JobContext("audited", 2, "id-1", method.qualname, container)
    assert seen["second"] == JobContext("audited", 1, None, method.qualname, container)
    with pytest.raises(NoJobContextError):
        current_job()


@pytest.mark.asyncio
async def test_the_context_is_reset_when_the_handler_raises() -> None:
    @processor
    class Raising:
        @process(queue="raising")
        async def run(self, job: int) -> None:
            assert current_job().queue == "raising"
            raise RuntimeError("fails")

    (method,) = [m for m in inventory() if m.provider_type is Raising]
    with pytest.raises(RuntimeError):
        await method.handler(wrap(1), ContainerBuilder().provide(Raising).build())
    with pytest.raises(NoJobContextError):
        current_job()


def test_job_meta_defaults() -> None:
    assert JobMeta() == JobMeta(attempt=1, job_id=None)


@pytest.mark.parametrize("attempt", [0, -1, True, 1.0, "1"])
def test_job_meta_refuses_attempts_below_1(attempt: object) -> None:
    with pytest.raises(ValueError, match=r"attempts start at 1"):
        JobMeta(attempt=attempt)  # type: ignore[arg-type]
