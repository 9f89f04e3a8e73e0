"""A worker in its own process, for the cross-process and crash rules.

``python -m nestq_conformance.worker_process --driver SPEC --queue Q [--queue Q2] --record FILE
[--settings JSON] [--hang-key KEY]`` boots the driver's producer and worker modules (with the suite's settings)
plus a recording processor on each queue, writes a ``booted`` line, and serves until SIGTERM or SIGINT (then
writes ``stopped``). Every handler run appends ``started`` and ``finished`` lines (payload, attempt, job id, pid)
to FILE, fsynced. A job whose payload holds a true KEY (``--hang-key``) is recorded as started and never finishes.

The process does not call ``harness.session_start()``: the parent owns the storage, and everything the child
needs to reach it comes from ``harness.subprocess_env()``, which the parent put in the environment. The process
also exits when its parent dies, so a crashed suite leaves no worker behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from nestq_conformance.harness import SuiteSettings
from nestq_conformance.resolve import load_harness
from nestq_conformance.suite_apps import RecordFile, recording_processor
from nestq_spec import Application, CancellationToken, module

__all__ = ["main"]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nestq_conformance.worker_process", description=__doc__)
    parser.add_argument("--driver", required=True, help="driver spec, as given to --nestq-driver")
    parser.add_argument("--queue", action="append", required=True, help="a queue to serve (repeatable)")
    parser.add_argument("--record", required=True, type=Path, help="JSON-lines file to append events to")
    parser.add_argument("--settings", default="", help="SuiteSettings as a JSON object")
    parser.add_argument("--hang-key", default=None, help="payload key that makes a job hang forever")
    return parser.parse_args(argv)


def _settings(text: str) -> SuiteSettings:
    if not text:
        return SuiteSettings()
    known = {f.name for f in dataclasses.fields(SuiteSettings)}
    values = {k: v for k, v in json.loads(text).items() if k in known}
    return SuiteSettings(**values)


async def _serve(args: argparse.Namespace, record: RecordFile) -> None:
    harness = load_harness(args.driver)
    settings = _settings(args.settings)
    recorder = recording_processor(list(args.queue), record, args.hang_key)
    root = module(
        imports=[harness.producer_module(settings), harness.worker_module(settings)], providers=[recorder]
    )(type("WorkerProcessApp", (), {}))
    app = Application.create(root)
    cancel = CancellationToken()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, cancel.cancel)
    parent = os.getppid()

    async def orphan_watch() -> None:
        # Reparenting means the suite died; a worker left running would steal the next run's jobs.
        while not cancel.is_cancelled:
            if os.getppid() != parent:
                cancel.cancel()
                return
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(orphan_watch())
    record.write("booted", queues=list(args.queue), driver=args.driver)
    try:
        await app.serve(cancel, shutdown_timeout=settings.shutdown_grace + 5.0)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    record.write("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker until SIGTERM/SIGINT; return the exit code (0 after a clean stop)."""
    args = _parse(argv)
    record = RecordFile(args.record)
    try:
        asyncio.run(_serve(args, record))
    except Exception as exc:
        record.write("error", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        record.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
