"""``nestq redis ...``: queue depths and dead letters, from the shell.

::

    nestq redis queues                         depths of every queue under the key prefix
    nestq redis dead list QUEUE [--limit N]    dead letters, newest first
    nestq redis dead show QUEUE ID             one dead letter: error, attempts, time, envelope
    nestq redis dead redrive QUEUE (ID ... | --all) [--yes]   back to ready
    nestq redis dead purge QUEUE (ID ... | --all) [--yes]     deleted for good

Destructive actions ask for confirmation when run on a terminal; ``--yes`` skips the question (scripts, which
have no terminal, are never asked).

``--url`` defaults to ``NESTQ_REDIS__URL`` (else ``redis://127.0.0.1:6379/0``), ``--prefix`` to
``NESTQ_REDIS__KEY_PREFIX`` (else ``nestq``); ``--json`` prints machine-readable output. Registered as the entry
point ``redis = "nestq_redis.cli:redis_command"`` in ``nestq.commands``; ``python -m nestq_redis.cli`` works too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from nestq_spec import NestqError

from .admin import QueueInfo, RedisQueueAdmin
from .config import display_url, load_config
from .connection import RedisConnection
from .store import DeadLetter

__all__ = ["build_parser", "main", "redis_command"]


def redis_command(sub: Any) -> None:
    """Add the ``redis`` subcommand to the ``nestq`` sub-parsers (the ``nestq.commands`` entry point)."""
    parser = sub.add_parser("redis", help="inspect Redis queues and their dead letters (depths, redrive, purge)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(parser)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="Redis URL (default: NESTQ_REDIS__URL, else the driver default)")
    parser.add_argument("--prefix", default=None, help="key prefix (default: NESTQ_REDIS__KEY_PREFIX, else nestq)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    what = parser.add_subparsers(dest="redis_command", metavar="ACTION", required=True)
    queues = what.add_parser("queues", help="every queue with its ready/delayed/running/dead counts")
    queues.set_defaults(func=_run(_queues))
    dead = what.add_parser("dead", help="dead letters: list, show, redrive, purge").add_subparsers(
        dest="dead_command", metavar="ACTION", required=True
    )
    listing = dead.add_parser("list", help="dead letters of a queue, newest first")
    listing.add_argument("queue")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--offset", type=int, default=0, help="skip this many of the newest")
    listing.set_defaults(func=_run(_dead_list))
    show = dead.add_parser("show", help="one dead letter in full")
    show.add_argument("queue")
    show.add_argument("id")
    show.set_defaults(func=_run(_dead_show))
    redrive = dead.add_parser("redrive", help="move dead letters back to ready: the ids given, or --all")
    redrive.add_argument("queue")
    redrive.add_argument("ids", nargs="*", metavar="ID")
    redrive.add_argument("--all", action="store_true", help="redrive every dead letter of the queue")
    redrive.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation on a terminal")
    redrive.set_defaults(func=_run(_dead_redrive))
    purge = dead.add_parser("purge", help="delete dead letters for good: the ids given, or --all")
    purge.add_argument("queue")
    purge.add_argument("ids", nargs="*", metavar="ID")
    purge.add_argument("--all", action="store_true", help="purge every dead letter of the queue")
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation on a terminal")
    purge.set_defaults(func=_run(_dead_purge))


Action = Callable[[RedisQueueAdmin, argparse.Namespace], Awaitable[int]]


def _run(action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        pinned: dict[str, object] = {}
        if args.url:
            pinned["url"] = args.url
        if args.prefix:
            pinned["key_prefix"] = args.prefix
        config = load_config(pinned)

        async def go() -> int:
            connection = RedisConnection(config)
            try:
                return await action(connection.admin, args)
            finally:
                await connection.aclose()

        try:
            return asyncio.run(go())
        except (RedisError, OSError) as exc:
            # redis-py's messages name the host and port, never the password; the URL is shown redacted.
            raise NestqError(f"Redis at {display_url(config.url)} failed: {type(exc).__name__}: {exc}") from None

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


# Deeper payloads are shown as truncated text: the JSON encoder (and the decoder, deeper still) recurses per level.
_MAX_DEPTH = 100
_TRUNCATED_BYTES = 2000


def _depth(value: object) -> int:
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if deepest > _MAX_DEPTH:
                return deepest
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _envelope(data: bytes) -> object:
    try:
        parsed: object = json.loads(data)
    except RecursionError:
        parsed = None
    except ValueError:
        return data.decode("utf-8", errors="replace")
    else:
        if _depth(parsed) <= _MAX_DEPTH:
            return parsed
    head = data[:_TRUNCATED_BYTES].decode("utf-8", errors="replace")
    return (f"{head}... [truncated: the envelope is nested more than {_MAX_DEPTH} levels deep; first "
            f"{min(len(data), _TRUNCATED_BYTES)} of {len(data)} bytes shown]")


def _letter(d: DeadLetter) -> dict[str, object]:
    return {"id": d.id, "failed_at": _when(d.failed_at), "attempts": d.attempts, "error": d.error,
            "bytes": len(d.data), "envelope": _envelope(d.data)}


async def _queues(admin: RedisQueueAdmin, args: argparse.Namespace) -> int:
    found: list[QueueInfo] = await admin.queues()
    if args.json:
        print(json.dumps([{"queue": q.name, "ready": q.ready, "delayed": q.delayed, "running": q.running,
                           "dead": q.dead} for q in found], indent=2))
        return 0
    if not found:
        print(f"no queues under the prefix {admin.store.prefix!r}")
        return 0
    print(_table(["QUEUE", "READY", "DELAYED", "RUNNING", "DEAD"],
                 [[q.name, q.ready, q.delayed, q.running, q.dead] for q in found]))
    return 0


async def _dead_list(admin: RedisQueueAdmin, args: argparse.Namespace) -> int:
    letters = await admin.dead_letters(args.queue, offset=args.offset, limit=max(1, args.limit))
    if args.json:
        print(json.dumps([_letter(d) for d in letters], indent=2, ensure_ascii=False))
        return 0
    if not letters:
        print(f"no dead letters on {args.queue}")
        return 0
    total = (await admin.queue(args.queue)).dead
    print(_table(["ID", "FAILED AT (UTC)", "ATTEMPTS", "BYTES", "ERROR"],
                 [[d.id, _when(d.failed_at), d.attempts, len(d.data), _one_line(d.error)] for d in letters]))
    print(f"\n{len(letters)} shown of {total} dead letter(s) on {args.queue}")
    return 0


async def _dead_show(admin: RedisQueueAdmin, args: argparse.Namespace) -> int:
    letter = await admin.dead_letter(args.queue, args.id)
    if letter is None:
        print(f"no dead letter {args.id} on {args.queue}", file=sys.stderr)
        return 1
    shown = _letter(letter)
    if args.json:
        print(json.dumps(shown, indent=2, ensure_ascii=False))
        return 0
    for key in ("id", "failed_at", "attempts", "bytes"):
        print(f"{key + ':':<11}{shown[key]}")
    print(f"{'error:':<11}{letter.error}")
    envelope = shown["envelope"]
    print("envelope:")
    print(json.dumps(envelope, indent=2, ensure_ascii=False) if not isinstance(envelope, str) else envelope)
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
        print(f"nestq redis dead {action}: give the ids to {action}, or --all (not both)", file=sys.stderr)
        return False
    return True


async def _dead_redrive(admin: RedisQueueAdmin, args: argparse.Namespace) -> int:
    if not _ids_or_all(args, "redrive"):
        return 2
    if not _confirmed(args, "Redrive", (await admin.queue(args.queue)).dead):
        print("aborted: nothing redriven", file=sys.stderr)
        return 1
    moved = await admin.redrive(args.queue, args.ids or None)
    _report(args, "redriven", moved)
    return 0 if moved or not args.ids else 1


async def _dead_purge(admin: RedisQueueAdmin, args: argparse.Namespace) -> int:
    if not _ids_or_all(args, "purge"):
        return 2
    if not _confirmed(args, "Purge (delete for good)", (await admin.queue(args.queue)).dead):
        print("aborted: nothing purged", file=sys.stderr)
        return 1
    purged = await admin.purge_dead(args.queue, args.ids or None)
    _report(args, "purged", purged)
    return 0 if purged or not args.ids else 1


def _report(args: argparse.Namespace, verb: str, count: int) -> None:
    if args.json:
        print(json.dumps({"queue": args.queue, verb: count}))
        return
    asked = f" of {len(args.ids)} id(s) given" if args.ids else ""
    print(f"{count} dead letter(s){asked} {verb} on {args.queue}")


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser (``python -m nestq_redis.cli``), the same as ``nestq redis``."""
    parser = argparse.ArgumentParser(prog="nestq redis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nestq redis`` stand-alone; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except NestqError as exc:
        print(f"nestq redis: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
