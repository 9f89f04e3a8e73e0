"""``nestq nats``: queue depths and dead letters of a stream prefix (list, show, redrive, purge).

    nestq nats queues                       # every queue with its depth and dead letters
    nestq nats dead list QUEUE              # dead letters, oldest first (ID = sequence in the dead-letter stream)
    nestq nats dead show ID                 # one in full: error, attempts, envelope
    nestq nats dead redrive QUEUE ID... | --all   # back on the queue as fresh jobs (asks on a terminal)
    nestq nats dead purge QUEUE ID... | --all     # deleted for good (asks on a terminal)

The server and prefix come from --url/--prefix, else NESTQ_NATS__URL / NESTQ_NATS__STREAM_PREFIX, else defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import nats.errors
import nats.js.errors
from nestq_spec import NestqError, redact

from .admin import DeadLetter, NatsAdmin
from .config import load_config
from .connection import NatsConnection

__all__ = ["build_parser", "main", "nats_command"]

Action = Callable[[NatsAdmin, argparse.Namespace], Awaitable[int]]


def nats_command(sub: Any) -> None:
    """Add ``nestq nats`` to the ``nestq`` command (entry point ``nestq.commands``)."""
    parser = sub.add_parser("nats", help="inspect NATS JetStream queues and their dead letters (depths, redrive, "
                            "purge)", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(parser)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="NATS URL (default: NESTQ_NATS__URL, else the driver default)")
    parser.add_argument("--prefix", default=None, help="stream prefix (default: NESTQ_NATS__STREAM_PREFIX, else nestq)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    what = parser.add_subparsers(dest="what", required=True)
    what.add_parser("queues", help="every queue with its depth and dead letters").set_defaults(func=_run(_queues))
    dead = what.add_parser("dead", help="dead letters: list, show, redrive, purge").add_subparsers(
        dest="action", required=True)
    listing = dead.add_parser("list", help="dead letters of a queue, oldest first")
    listing.add_argument("queue")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.set_defaults(func=_run(_dead_list))
    show = dead.add_parser("show", help="one dead letter in full")
    show.add_argument("id", type=int)
    show.set_defaults(func=_run(_dead_show))
    for name, verb in (("redrive", "put back on the queue as fresh jobs"), ("purge", "delete for good")):
        action = dead.add_parser(name, help=f"dead letters to {verb}: the ids given, or --all")
        action.add_argument("queue")
        action.add_argument("ids", nargs="*", type=int, metavar="ID")
        action.add_argument("--all", action="store_true", help=f"{name} every dead letter of the queue")
        action.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation on a terminal")
        action.set_defaults(func=_run(_dead_redrive if name == "redrive" else _dead_purge))


def _run(action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        pinned: dict[str, object] = {}
        if args.url:
            pinned["url"] = args.url
        if args.prefix:
            pinned["stream_prefix"] = args.prefix
        config = load_config(pinned)

        async def go() -> int:
            connection = NatsConnection(config)
            try:
                return await action(NatsAdmin(connection), args)
            finally:
                await connection.aclose()

        try:
            return asyncio.run(go())
        except (nats.errors.Error, nats.js.errors.Error, OSError, TimeoutError) as exc:
            where = redact(config.url, as_repr=False)
            raise NestqError(f"NATS at {where} failed: {type(exc).__name__}: {exc}") from None

    return run


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _one_line(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _envelope(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def _letter(d: DeadLetter) -> dict[str, object]:
    return {"id": d.seq, "queue": d.queue, "job_id": d.job_id, "attempts": d.attempts, "error": d.error,
            "failed_at": _when(d.failed_at), "envelope": _envelope(d.data)}


async def _queues(admin: NatsAdmin, args: argparse.Namespace) -> int:
    depths, dead = await admin.depths(), await admin.dead_counts()
    rows = [(q, depths.get(q, 0), dead.get(q, 0)) for q in sorted(set(depths) | set(dead))]
    if args.json:
        print(json.dumps([{"queue": q, "depth": n, "dead": d} for q, n, d in rows]))
    elif rows:
        print(_table(("QUEUE", "DEPTH", "DEAD"), rows))
    else:
        print(f"no queue holds jobs or dead letters under prefix {admin.layout.prefix!r}")
    return 0


async def _dead_list(admin: NatsAdmin, args: argparse.Namespace) -> int:
    letters = await admin.dead_letters(args.queue, args.limit)
    if args.json:
        print(json.dumps([_letter(d) for d in letters], ensure_ascii=False))
    elif letters:
        print(_table(("ID", "JOB", "ATTEMPTS", "FAILED AT", "ERROR"),
                     [(d.seq, d.job_id, d.attempts, _when(d.failed_at), _one_line(d.error)) for d in letters]))
    else:
        print(f"no dead letters on {args.queue}")
    return 0


async def _dead_show(admin: NatsAdmin, args: argparse.Namespace) -> int:
    try:
        letter = await admin.show(args.id)
    except LookupError as exc:
        print(f"nestq nats dead show: {exc}", file=sys.stderr)
        return 1
    shown = _letter(letter)
    if args.json:
        print(json.dumps(shown, ensure_ascii=False))
        return 0
    for key in ("id", "queue", "job_id", "attempts", "failed_at"):
        print(f"{key}: {shown[key]}")
    print(f"error:\n{letter.error}")
    envelope = shown["envelope"]
    print("envelope:")
    print(envelope if isinstance(envelope, str) else json.dumps(envelope, indent=2, ensure_ascii=False))
    return 0


def _confirmed(args: argparse.Namespace, action: str, count: int) -> bool:
    # Asked only on a terminal: scripts and pipes have nobody to answer.
    if args.yes or not sys.stdin.isatty():
        return True
    what = f"{len(args.ids)} dead letter(s)" if args.ids else f"all {count} dead letter(s)"
    try:
        answer = input(f"{action} {what} of {args.queue}? [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def _ids_or_all(args: argparse.Namespace, action: str) -> bool:
    if bool(args.ids) == bool(args.all):
        print(f"nestq nats dead {action}: give the ids to {action}, or --all (not both)", file=sys.stderr)
        return False
    return True


async def _dead_redrive(admin: NatsAdmin, args: argparse.Namespace) -> int:
    if not _ids_or_all(args, "redrive"):
        return 2
    if not _confirmed(args, "Redrive", (await admin.dead_counts()).get(args.queue, 0)):
        print("aborted: nothing redriven", file=sys.stderr)
        return 1
    moved = await admin.redrive(args.ids, queue=args.queue) if args.ids else await admin.redrive_all(args.queue)
    _report(args, "redriven", moved)
    return 0 if moved or not args.ids else 1


async def _dead_purge(admin: NatsAdmin, args: argparse.Namespace) -> int:
    if not _ids_or_all(args, "purge"):
        return 2
    if not _confirmed(args, "Purge (delete for good)", (await admin.dead_counts()).get(args.queue, 0)):
        print("aborted: nothing purged", file=sys.stderr)
        return 1
    purged = await admin.delete(args.ids, queue=args.queue) if args.ids else await admin.purge(args.queue)
    _report(args, "purged", purged)
    return 0 if purged or not args.ids else 1


def _report(args: argparse.Namespace, verb: str, count: int) -> None:
    if args.json:
        print(json.dumps({"queue": args.queue, verb: count}))
        return
    asked = f" of {len(args.ids)} id(s) given" if args.ids else ""
    print(f"{count} dead letter(s){asked} {verb} on {args.queue}")


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser (``python -m nestq_nats.cli``), the same as ``nestq nats``."""
    parser = argparse.ArgumentParser(prog="nestq nats", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nestq nats`` stand-alone; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except NestqError as exc:
        print(f"nestq nats: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
