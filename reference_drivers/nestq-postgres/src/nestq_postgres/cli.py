"""``nestq postgres ...``: schema migrations, queue depths and dead letters, from the shell.

::

    nestq postgres migrate                        create or upgrade the schema (idempotent)
    nestq postgres version                        the schema's version and the one this driver needs
    nestq postgres queues                         ready/delayed/running/dead counts of every queue
    nestq postgres dead list QUEUE [--limit N]    dead letters, newest first
    nestq postgres dead show QUEUE ID             one dead letter: error, attempts, time, envelope
    nestq postgres dead redrive QUEUE (ID ... | --all) [--yes]   back to ready
    nestq postgres dead purge QUEUE (ID ... | --all) [--yes]     deleted for good

Destructive actions ask for confirmation when run on a terminal; ``--yes`` skips the question (scripts, which
have no terminal, are never asked). ``--dsn`` defaults to ``NESTQ_POSTGRES__DSN``, ``--schema`` to
``NESTQ_POSTGRES__SCHEMA`` (else ``nestq``); ``--json`` prints machine-readable output. Registered as the entry
point ``postgres = "nestq_postgres.cli:postgres_command"`` in ``nestq.commands``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from nestq_spec import NestqError

from .admin import DeadLetter, PostgresQueueAdmin
from .config import PostgresConfig, display_dsn, load_config
from .connection import channel_name, open_pool
from .schema import SCHEMA_VERSION, check_version, migrate, schema_version

__all__ = ["build_parser", "main", "postgres_command"]


def postgres_command(sub: Any) -> None:
    """Add the ``postgres`` subcommand to the ``nestq`` sub-parsers (the ``nestq.commands`` entry point)."""
    parser = sub.add_parser("postgres", help="PostgreSQL queues: migrate the schema, depths, dead letters",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(parser)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", default=None, help="PostgreSQL URL (default: NESTQ_POSTGRES__DSN)")
    parser.add_argument("--schema", default=None, help="schema of the queue tables (default: NESTQ_POSTGRES__SCHEMA)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    what = parser.add_subparsers(dest="postgres_command", metavar="ACTION", required=True)
    what.add_parser("migrate", help="create or upgrade the queue tables").set_defaults(func=_plain(_migrate))
    what.add_parser("version", help="the schema's version").set_defaults(func=_plain(_version))
    what.add_parser("queues", help="every queue with its counts").set_defaults(func=_run(_queues))
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
    for name, verb, func in (("redrive", "redrive", "_dead_redrive"), ("purge", "purge (delete for good)",
                                                                        "_dead_purge")):
        action = dead.add_parser(name, help=f"{verb}: the ids given, or --all")
        action.add_argument("queue")
        action.add_argument("ids", nargs="*", metavar="ID")
        action.add_argument("--all", action="store_true", help=f"{name} every dead letter of the queue")
        action.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation on a terminal")
        action.set_defaults(func=_run(globals()[func]))


def _config(args: argparse.Namespace) -> PostgresConfig:
    pinned: dict[str, object] = {}
    if args.dsn:
        pinned["dsn"] = args.dsn
    if args.schema:
        pinned["schema"] = args.schema
    return load_config(pinned)


Plain = Callable[[Any, PostgresConfig, argparse.Namespace], Awaitable[int]]
Action = Callable[[PostgresQueueAdmin, argparse.Namespace], Awaitable[int]]


def _plain(action: Plain) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        config = _config(args)

        async def go() -> int:
            pool = await open_pool(config)
            try:
                async with pool.acquire() as conn:
                    return await action(conn, config, args)
            finally:
                await pool.close()

        return _guard(config, go)

    return run


def _run(action: Action) -> Callable[[argparse.Namespace], int]:
    async def checked(conn: Any, config: PostgresConfig, args: argparse.Namespace) -> int:
        check_version(await schema_version(conn, config.schema), config.schema)
        return await action(PostgresQueueAdmin(conn, config.schema, channel_name(config.schema)), args)

    return _plain(checked)


def _guard(config: PostgresConfig, go: Callable[[], Awaitable[int]]) -> int:
    try:
        return asyncio.run(go())  # type: ignore[arg-type]
    except NestqError:
        raise  # already says what failed, password masked
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise NestqError(f"PostgreSQL at {display_dsn(config.dsn)} failed: {type(exc).__name__}: {exc}") from None


async def _migrate(conn: Any, config: PostgresConfig, args: argparse.Namespace) -> int:
    before, after = await migrate(conn, config.schema)
    if args.json:
        print(json.dumps({"schema": config.schema, "from": before, "to": after}))
    elif before == after:
        print(f"schema {config.schema} is at version {after}: nothing to do")
    else:
        print(f"schema {config.schema} migrated from version {before} to {after}")
    return 0


async def _version(conn: Any, config: PostgresConfig, args: argparse.Namespace) -> int:
    found = await schema_version(conn, config.schema)
    if args.json:
        print(json.dumps({"schema": config.schema, "version": found, "driver_needs": SCHEMA_VERSION}))
    else:
        print(f"schema {config.schema}: version {found} (this driver needs {SCHEMA_VERSION})")
    return 0 if found == SCHEMA_VERSION else 1


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _one_line(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _envelope(data: bytes) -> object:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return data.decode("utf-8", errors="replace")


def _letter(d: DeadLetter) -> dict[str, object]:
    return {"id": d.id, "failed_at": d.failed_at.isoformat(), "attempts": d.attempts, "error": d.error,
            "bytes": len(d.data), "envelope": _envelope(d.data)}


async def _queues(admin: PostgresQueueAdmin, args: argparse.Namespace) -> int:
    found = await admin.queues()
    if args.json:
        print(json.dumps([{"queue": q.name, "ready": q.ready, "delayed": q.delayed, "running": q.running,
                           "dead": q.dead} for q in found], indent=2))
    elif not found:
        print(f"no queues in schema {admin.schema}")
    else:
        print(_table(["QUEUE", "READY", "DELAYED", "RUNNING", "DEAD"],
                     [[q.name, q.ready, q.delayed, q.running, q.dead] for q in found]))
    return 0


async def _dead_list(admin: PostgresQueueAdmin, args: argparse.Namespace) -> int:
    letters = await admin.dead_letters(args.queue, offset=args.offset, limit=max(1, args.limit))
    if args.json:
        print(json.dumps([_letter(d) for d in letters], indent=2, ensure_ascii=False))
        return 0
    if not letters:
        print(f"no dead letters on {args.queue}")
        return 0
    total = (await admin.queue(args.queue)).dead
    print(_table(["ID", "FAILED AT", "ATTEMPTS", "BYTES", "ERROR"],
                 [[d.id, d.failed_at.isoformat(), d.attempts, len(d.data), _one_line(d.error)] for d in letters]))
    print(f"\n{len(letters)} shown of {total} dead letter(s) on {args.queue}")
    return 0


async def _dead_show(admin: PostgresQueueAdmin, args: argparse.Namespace) -> int:
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
        print(f"nestq postgres dead {action}: give the ids to {action}, or --all (not both)", file=sys.stderr)
        return False
    return True


async def _dead_redrive(admin: PostgresQueueAdmin, args: argparse.Namespace) -> int:
    if not _ids_or_all(args, "redrive"):
        return 2
    if not _confirmed(args, "Redrive", (await admin.queue(args.queue)).dead):
        print("aborted: nothing redriven", file=sys.stderr)
        return 1
    moved = await admin.redrive(args.queue, args.ids or None)
    _report(args, "redriven", moved)
    return 0 if moved or not args.ids else 1


async def _dead_purge(admin: PostgresQueueAdmin, args: argparse.Namespace) -> int:
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
    """A stand-alone parser (``python -m nestq_postgres.cli``), the same as ``nestq postgres``."""
    parser = argparse.ArgumentParser(prog="nestq postgres", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nestq postgres`` stand-alone; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except NestqError as exc:
        print(f"nestq postgres: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
