"""``nestq sqs ...``: queue depths and dead letters, from the shell.

::

    nestq sqs depth QUEUE ...                      waiting / in flight / delayed / dead, per queue
    nestq sqs dead list QUEUE [--limit N]          dead letters with their error and attempts
    nestq sqs dead redrive QUEUE [--limit N] [--yes]   back to the queue as new jobs
    nestq sqs dead purge QUEUE [--yes]             deleted for good (SQS allows one purge per 60 s)

Settings come from ``NESTQ_SQS__*`` (region, endpoint URL, queue prefix, fifo) like the driver's; credentials
from the AWS chain, never printed. ``--json`` prints machine-readable output. Registered as the entry point
``sqs = "nestq_sqs.cli:sqs_command"`` in ``nestq.commands``; ``python -m nestq_sqs.cli`` works too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from nestq_spec import NestqError

from .admin import SqsAdmin
from .config import load_config
from .connection import SqsConnection

__all__ = ["build_parser", "main", "sqs_command"]

Action = Callable[[SqsAdmin, argparse.Namespace], Awaitable[int]]


def sqs_command(sub: Any) -> None:
    """Add the ``sqs`` subcommand to the ``nestq`` sub-parsers (the ``nestq.commands`` entry point)."""
    parser = sub.add_parser("sqs", help="inspect SQS queues and their dead letters (depths, redrive, purge)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(parser)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    what = parser.add_subparsers(dest="sqs_command", metavar="ACTION", required=True)
    depth = what.add_parser("depth", help="waiting, in-flight, delayed and dead counts of queues (approximate)")
    depth.add_argument("queues", nargs="+", metavar="QUEUE")
    depth.set_defaults(func=_run(_depth))
    dead = what.add_parser("dead", help="dead letters: list, redrive, purge").add_subparsers(
        dest="dead_command", metavar="ACTION", required=True)
    listing = dead.add_parser("list", help="dead letters of a queue with their error and attempts")
    listing.add_argument("queue")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.set_defaults(func=_run(_dead_list))
    redrive = dead.add_parser("redrive", help="send dead letters back to their queue as new jobs")
    redrive.add_argument("queue")
    redrive.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    redrive.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    redrive.set_defaults(func=_run(_dead_redrive))
    purge = dead.add_parser("purge", help="delete every dead letter of a queue")
    purge.add_argument("queue")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(func=_run(_dead_purge))


def _run(action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        async def go() -> int:
            connection = SqsConnection(load_config())
            try:
                return await action(SqsAdmin(connection), args)
            finally:
                await connection.aclose()

        try:
            return asyncio.run(go())
        except NestqError as exc:
            print(f"nestq sqs: {exc}", file=sys.stderr)
            return 1

    return run


def _confirmed(args: argparse.Namespace, question: str) -> bool:
    if args.yes or not sys.stdin.isatty():
        return True
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


async def _depth(admin: SqsAdmin, args: argparse.Namespace) -> int:
    depths = {queue: await admin.depth(queue) for queue in args.queues}
    if args.json:
        print(json.dumps(depths, indent=2))
    else:
        print(f"{'queue':40} {'waiting':>8} {'in_flight':>9} {'delayed':>8} {'dead':>6}")
        for queue, d in depths.items():
            print(f"{queue:40} {d['waiting']:>8} {d['in_flight']:>9} {d['delayed']:>8} {d['dead']:>6}")
    return 0


async def _dead_list(admin: SqsAdmin, args: argparse.Namespace) -> int:
    letters = await admin.dead_letters(args.queue, limit=args.limit)
    if args.json:
        print(json.dumps([letter.as_dict() for letter in letters], indent=2))
        return 0
    if not letters:
        print(f"no dead letters on {args.queue}")
    for letter in letters:
        envelope = letter.data.decode("utf-8", "replace")
        shown = envelope if len(envelope) <= 200 else envelope[:200] + f"... ({len(letter.data)} bytes)"
        print(f"{letter.job_id}  attempts={letter.attempts}\n  error: {letter.error}\n  envelope: {shown}")
    return 0


async def _dead_redrive(admin: SqsAdmin, args: argparse.Namespace) -> int:
    if not _confirmed(args, f"send up to {args.limit} dead letters of {args.queue} back to the queue?"):
        return 1
    moved = await admin.redrive(args.queue, limit=args.limit)
    print(json.dumps({"redriven": moved}) if args.json else f"{moved} dead letter(s) sent back to {args.queue}")
    return 0


async def _dead_purge(admin: SqsAdmin, args: argparse.Namespace) -> int:
    if not _confirmed(args, f"delete every dead letter of {args.queue} for good?"):
        return 1
    await admin.purge_dead_letters(args.queue)
    print(json.dumps({"purged": args.queue}) if args.json else f"dead letters of {args.queue} purged")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m nestq_sqs.cli``."""
    parser = argparse.ArgumentParser(prog="nestq sqs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
