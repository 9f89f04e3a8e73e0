"""``nestq rabbitmq ...``: queue depths and dead letters, from the shell.

::

    nestq rabbitmq depth QUEUE [QUEUE ...]              ready, delayed and dead counts
    nestq rabbitmq dead list QUEUE [--limit N]          dead letters, oldest first (left in place)
    nestq rabbitmq dead show QUEUE ID                   one dead letter: error, attempts, time, envelope
    nestq rabbitmq dead redrive QUEUE (ID ... | --all)  back to the work queue, attempts reset
    nestq rabbitmq dead purge QUEUE (ID ... | --all)    deleted for good

``--url`` defaults to ``NESTQ_RABBITMQ__URL`` (else the driver's default), ``--prefix`` to
``NESTQ_RABBITMQ__PREFIX`` (else ``nestq``); ``--json`` prints machine-readable output; redrive and purge ask
for confirmation on a terminal (``--yes`` skips it). Registered as ``rabbitmq`` in ``nestq.commands``.
AMQP cannot list queues: ``depth`` counts the queues named, and its ``delayed`` column only the delay queues
this command can know of (none; ``rabbitmqctl list_queues`` shows all of ``<prefix>.delay.*``). With
``NESTQ_RABBITMQ__MANAGEMENT_URL`` set, ``depth`` asks the management API instead: every delay queue, and a
``held`` column (deliveries the workers of every process hold unacked).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from nestq_spec import NestqError, redact

from .admin import DeadLetter, RabbitmqAdmin
from .config import load_config
from .connection import RabbitmqConnection

__all__ = ["main", "rabbitmq_command"]


def rabbitmq_command(sub: Any) -> None:
    """Add the ``rabbitmq`` subcommand to the ``nestq`` sub-parsers (the ``nestq.commands`` entry point)."""
    parser = sub.add_parser("rabbitmq", help="inspect RabbitMQ queues and their dead letters (depths, redrive, purge)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(parser)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="AMQP URL (default: NESTQ_RABBITMQ__URL, else the default)")
    parser.add_argument("--prefix", default=None,
                        help="queue-name prefix (default: NESTQ_RABBITMQ__PREFIX, else nestq)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    what = parser.add_subparsers(dest="rabbitmq_command", metavar="ACTION", required=True)
    depth = what.add_parser("depth", help="ready/delayed/dead counts of the queues named")
    depth.add_argument("queues", nargs="+", metavar="QUEUE")
    depth.set_defaults(func=_run(_depth))
    dead = what.add_parser("dead", help="dead letters: list, show, redrive, purge").add_subparsers(
        dest="dead_command", metavar="ACTION", required=True
    )
    listing = dead.add_parser("list", help="dead letters of a queue, oldest first")
    listing.add_argument("queue")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.set_defaults(func=_run(_dead_list))
    show = dead.add_parser("show", help="one dead letter in full")
    show.add_argument("queue")
    show.add_argument("id")
    show.set_defaults(func=_run(_dead_show))
    for name, helptext, action in (("redrive", "move dead letters back to the work queue", _dead_redrive),
                                   ("purge", "delete dead letters for good", _dead_purge)):
        sub = dead.add_parser(name, help=f"{helptext}: the ids given, or --all")
        sub.add_argument("queue")
        sub.add_argument("ids", nargs="*", metavar="ID")
        sub.add_argument("--all", action="store_true", help=f"{name} every dead letter of the queue")
        sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        sub.set_defaults(func=_run(action))


Action = Callable[[RabbitmqAdmin, argparse.Namespace], Awaitable[int]]


def _run(action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        pinned: dict[str, object] = {}
        if args.url:
            pinned["url"] = args.url
        if args.prefix:
            pinned["prefix"] = args.prefix
        config = load_config(pinned)

        async def go() -> int:
            connection = RabbitmqConnection(config, name="nestq-cli")
            try:
                return await action(RabbitmqAdmin(connection), args)
            finally:
                await connection.aclose()

        try:
            return asyncio.run(go())
        except NestqError:
            raise
        except Exception as exc:
            raise NestqError(f"RabbitMQ at {redact(config.url, as_repr=False)} failed: {type(exc).__name__}: "
                             f"{redact(str(exc), as_repr=False)}") from None

    return run


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _envelope(data: bytes) -> object:
    try:
        parsed: object = json.loads(data)
    except (ValueError, RecursionError):
        return data[:2000].decode("utf-8", errors="replace")
    return parsed


def _letter(d: DeadLetter) -> dict[str, object]:
    return {"id": d.job_id, "failed_at": _when(d.dead_at), "attempts": d.attempts, "error": d.error,
            "bytes": len(d.data), "envelope": _envelope(d.data)}


async def _depth(admin: RabbitmqAdmin, args: argparse.Namespace) -> int:
    found = [await admin.depth(q) for q in args.queues]
    across = bool(admin.connection.config.management_url)  # else held is this CLI process's: always 0
    if args.json:
        rows = [{"queue": d.queue, "ready": d.ready, "delayed": d.delayed, "dead": d.dead} for d in found]
        if across:
            for row, d in zip(rows, found, strict=True):
                row["held"] = d.held
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len("QUEUE"), *(len(d.queue) for d in found))
    print(f"{'QUEUE':<{width}}  READY  DELAYED  {'HELD  ' if across else ''}DEAD")
    for d in found:
        held = f"{d.held:>4}  " if across else ""
        print(f"{d.queue:<{width}}  {d.ready:>5}  {d.delayed:>7}  {held}{d.dead:>4}")
    return 0


async def _dead_list(admin: RabbitmqAdmin, args: argparse.Namespace) -> int:
    letters = await admin.dead_letters(args.queue, limit=max(1, args.limit))
    if args.json:
        print(json.dumps([_letter(d) for d in letters], indent=2, ensure_ascii=False))
        return 0
    if not letters:
        print(f"no dead letters on {args.queue}")
        return 0
    for d in letters:
        error = " ".join(d.error.split())
        print(f"{d.job_id}  {_when(d.dead_at)}  attempts={d.attempts}  {error[:80]}")
    print(f"\n{len(letters)} shown of {(await admin.depth(args.queue)).dead} dead letter(s) on {args.queue}")
    return 0


async def _dead_show(admin: RabbitmqAdmin, args: argparse.Namespace) -> int:
    letter = await admin.show(args.queue, args.id)
    if letter is None:
        print(f"no dead letter {args.id} on {args.queue}", file=sys.stderr)
        return 1
    shown = _letter(letter)
    if args.json:
        print(json.dumps(shown, indent=2, ensure_ascii=False))
        return 0
    for key in ("id", "failed_at", "attempts", "bytes", "error"):
        print(f"{key + ':':<11}{shown[key]}")
    print("envelope:")
    envelope = shown["envelope"]
    print(envelope if isinstance(envelope, str) else json.dumps(envelope, indent=2, ensure_ascii=False))
    return 0


async def _confirmed(admin: RabbitmqAdmin, args: argparse.Namespace, action: str) -> bool | None:
    if bool(args.ids) == bool(args.all):
        print(f"nestq rabbitmq dead {action}: give the ids, or --all (not both)", file=sys.stderr)
        return None
    if args.yes or not sys.stdin.isatty():  # scripts and pipes have nobody to answer
        return True
    count = (await admin.depth(args.queue)).dead
    what = f"{len(args.ids)} dead letter(s)" if args.ids else f"all {count} dead letter(s)"
    try:
        answer = await asyncio.to_thread(input, f"{action} {what} of {args.queue}? [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


async def _settle(admin: RabbitmqAdmin, args: argparse.Namespace, name: str, verb: str) -> int:
    ok = await _confirmed(admin, args, name)
    if ok is None:
        return 2
    if not ok:
        print(f"aborted: nothing {verb}", file=sys.stderr)
        return 1
    ids = args.ids or None
    count = await (admin.redrive(args.queue, ids) if name == "redrive" else admin.purge(args.queue, ids))
    if args.json:
        print(json.dumps({"queue": args.queue, verb: count}))
    else:
        print(f"{count} dead letter(s) {verb} on {args.queue}")
    return 0 if count or not args.ids else 1


async def _dead_redrive(admin: RabbitmqAdmin, args: argparse.Namespace) -> int:
    return await _settle(admin, args, "redrive", "redriven")


async def _dead_purge(admin: RabbitmqAdmin, args: argparse.Namespace) -> int:
    return await _settle(admin, args, "purge", "purged")


def main(argv: list[str] | None = None) -> int:
    """``python -m nestq_rabbitmq.cli ...``: the same as ``nestq rabbitmq ...``."""
    parser = argparse.ArgumentParser(prog="nestq rabbitmq", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except NestqError as exc:
        print(f"nestq rabbitmq: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
