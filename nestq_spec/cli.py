"""The ``nestq`` command: ``nestq run module:Root`` here; other packages add subcommands.

A subcommand is an entry point in the group ``nestq.commands`` naming a function that takes the argparse
sub-parsers object, adds its parser, and sets ``func`` (``args -> exit code``) as the parser's default.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

from nestq_spec.app import Application
from nestq_spec.errors import NestqError

__all__ = ["load_object", "main"]


def load_object(spec: str) -> Any:
    """Import ``package.module:attribute`` (the attribute may be dotted) and return the attribute."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise NestqError(f"expected 'module:attribute', found {spec!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise NestqError(f"cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise NestqError(f"{module_name!r} has no attribute {attr!r}") from None
    return obj


def _run(args: argparse.Namespace) -> int:
    root = load_object(args.root)
    app = Application.create(root)
    asyncio.run(app.run(shutdown_timeout=args.shutdown_timeout))
    return 0


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``nestq`` argument parser, with every installed subcommand.

    Given the command line, it imports only the subcommand that line names: ``nestq run`` (what every worker
    process starts with) then pays for no plugin's imports (a driver CLI pulls in its client library), and one
    broken plugin cannot slow down or break another's command. Without a command (``nestq --help``), it loads
    them all so the help lists each with its own description.
    """
    parser = argparse.ArgumentParser(prog="nestq", description="nestq: the queue seam and its conformance kit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser("run", help="boot an app from its root module and serve its transports until SIGINT/SIGTERM")
    run.add_argument("root", help="the root module, as package.module:RootModule")
    run.add_argument("--shutdown-timeout", type=float, default=30.0, help="seconds to wait for transports to stop")
    run.set_defaults(func=_run)
    chosen = _command_of(argv)
    for ep in sorted(entry_points(group="nestq.commands"), key=lambda e: e.name):
        if chosen is not None and ep.name != chosen:
            continue
        try:
            ep.load()(sub)
        except ModuleNotFoundError as exc:
            # An optional extra that is not installed (``nestq redis`` without ``nestq[redis]``) is normal: say so
            # only when someone asks for that subcommand, not on every ``nestq`` invocation.
            _add_unavailable(sub, ep.name, ep.value, exc)
        except Exception as exc:  # one broken plugin must not take the whole command down
            print(f"nestq: subcommand {ep.name!r} ({ep.value}) failed to load: {exc}", file=sys.stderr)
    return parser


def _command_of(argv: Sequence[str] | None) -> str | None:
    """The subcommand a command line names (its first argument that is not an option), or None."""
    for arg in sys.argv[1:] if argv is None else argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def _add_unavailable(sub: Any, name: str, value: str, exc: ModuleNotFoundError) -> None:
    missing = exc.name or str(exc)
    hint = f"`pip install 'nestq[{name}]'`" if value.startswith("nestq_") else "the package or extra that provides it"
    reason = f"subcommand {name!r} ({value}) cannot load: module {missing!r} is not installed; install {hint}"

    def unavailable(args: argparse.Namespace) -> int:
        raise NestqError(reason)

    parser = sub.add_parser(name, help=f"(unavailable: module {missing!r} is not installed)", add_help=False)
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    parser.set_defaults(func=unavailable)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nestq`` console script."""
    args = build_parser(argv).parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.func(args)
    except NestqError as exc:
        print(f"nestq: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
