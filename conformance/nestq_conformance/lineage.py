"""Which asyncio tasks descend from a transport's ``serve()``: the tasks a worker itself started.

LIF-008 asks that ``serve()`` leave no task of its own running. Counting every task that appeared in the loop is
storage-shaped: a client library may keep tasks on its connection (a reader, a pinger, a flusher) for as long as
the connection is open, and the connection belongs to the app, which closes it at shutdown (LIF-009's business),
not to ``serve()``. So this counts by lineage instead. While :class:`ServeLineage` is installed, the loop's task
factory marks the task running a ``Transport.serve`` coroutine with a context variable; every task created from
that task, or from anything it scheduled (a callback, a protocol, a task of a task), inherits the context and is
recorded. Tasks a client started while ``configure()`` connected, or that the producer app owns, are not.

Python 3.11 has no ``Task.get_context()``, which is why the factory records tasks as they are made.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import Any

from nestq_spec import Transport

__all__ = ["ServeLineage"]

_SERVING: contextvars.ContextVar[bool] = contextvars.ContextVar("nestq_suite_serving", default=False)
"""Set in the context of each ``Transport.serve`` task, and so inherited by everything started from it."""

_Factory = Any  # asyncio's TaskFactory alias is not public API; the call signature is checked at run time


def _is_serve(coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any]) -> bool:
    """Whether ``coro`` is an unstarted ``serve()`` coroutine of a :class:`Transport`."""
    code = getattr(coro, "cr_code", None)
    frame = getattr(coro, "cr_frame", None)
    if code is None or frame is None or code.co_name != "serve":
        return False
    return isinstance(frame.f_locals.get("self"), Transport)


class ServeLineage:
    """While installed (``with ServeLineage(loop) as lineage``), records every task started inside ``serve()``.

    :meth:`running` lists those still not done. The previous task factory is put back on exit and still makes
    every task, so this composes with a loop that has one.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._previous: _Factory = None
        self._tasks: list[asyncio.Future[Any]] = []

    def __enter__(self) -> ServeLineage:
        self._previous = self._loop.get_task_factory()
        self._loop.set_task_factory(self._factory)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._loop.set_task_factory(self._previous)

    def _factory(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
        context: contextvars.Context | None = None,
    ) -> asyncio.Future[Any]:
        serving = (context.get(_SERVING, False) if context is not None else _SERVING.get())
        if not serving and _is_serve(coro):
            # A copy of the creator's context with the mark set, so the serve task and its descendants carry it.
            context = context.copy() if context is not None else contextvars.copy_context()
            context.run(_SERVING.set, True)
            serving = True
        if self._previous is not None:
            task: asyncio.Future[Any] = (
                self._previous(loop, coro) if context is None else self._previous(loop, coro, context=context)
            )
        else:
            task = asyncio.Task(coro, loop=loop, context=context)
        if serving:
            self._tasks.append(task)
        return task

    def running(self) -> list[asyncio.Future[Any]]:
        """Tasks started inside a ``serve()`` (the ``serve()`` tasks included) that are not done."""
        return [t for t in self._tasks if not t.done()]

    def describe(self) -> list[str]:
        """Each running task as its name and the coroutine it runs, for a failure message."""
        described = []
        for task in self.running():
            coro = task.get_coro() if isinstance(task, asyncio.Task) else None
            what = getattr(coro, "__qualname__", type(coro).__name__)
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            described.append(f"{name} running {what}")
        return described
