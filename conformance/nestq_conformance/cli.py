"""The ``nestq check`` and ``nestq rules`` subcommands (entry points in ``nestq.commands``).

``nestq check [DRIVER] [--report DIR] [--timeout-scale F] [-k EXPR] [-x] [-- PYTEST ARGS...]`` runs the
conformance suite (and only the suite, not the tests of the current directory) in-process with pytest, then prints
the report card as a table. Exit codes:

- 0: every rule that ran passed (rules skipped for an undeclared capability and declared expected failures are fine);
- 1: a rule failed, errored, or passed although the driver declared it an expected failure; or no rule ran;
- 2: usage error (unknown driver, contradictory manifest, a declared capability whose probe the harness lacks, bad
  arguments), or an environment error: the preflight could not round-trip one job through the driver;
- 3: pytest was interrupted or hit an internal error.

``nestq rules [--json | --markdown]`` prints the rule catalogue, read from the suite's own test functions.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DRIVER", "check_command", "main_check", "main_rules", "rules_command"]

DEFAULT_DRIVER = "memory"
"""The driver ``nestq check`` judges when none is named: the embedded in-memory reference driver."""

_EPILOG = """exit codes: 0 every rule that ran passed (skips for undeclared capabilities and declared expected failures
are fine); 1 a rule failed, errored or unexpectedly passed, or no rule ran; 2 usage error (unknown driver,
contradictory manifest, a declared capability without its probe) or environment error (the preflight could not
round-trip one job); 3 pytest interrupted or internal error. A run that leaves rules out (-k, -x, node ids) is
reported PARTIAL and never gets a green badge.
Other options go to pytest as they are; put them after `--` when in doubt (`nestq check memory -- -vv --tb=long`)."""


def check_command(subparsers: Any) -> None:
    """Add ``nestq check`` to the ``nestq`` command's sub-parsers."""
    parser = subparsers.add_parser(
        "check",
        help="run the conformance suite against a driver and print its report card",
        description="Run the nestq conformance suite against DRIVER (default: memory) and print the report card.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "driver",
        nargs="?",
        default=None,
        metavar="DRIVER",
        help="an entry-point name in nestq.drivers, a module exposing `harness`, or package.module:attribute "
        f"(default: $NESTQ_DRIVER, else {DEFAULT_DRIVER})",
    )
    parser.add_argument(
        "--report", metavar="DIR", help="also write nestq-report.json, nestq-report.md and nestq-badge.json into DIR"
    )
    parser.add_argument("--timeout-scale", metavar="F", type=float, help="stretch every deadline by F (slow CI)")
    parser.add_argument("-k", metavar="EXPR", dest="keyword", help="only run rules matching EXPR (pytest -k)")
    parser.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failing rule")
    parser.add_argument("pytest_args", nargs="*", metavar="PYTEST_ARGS", help="further pytest arguments, after --")
    parser.set_defaults(func=main_check)
    # The `nestq` parser is built elsewhere with plain parse_args; this parser hands what it does not know to pytest.
    parser.__class__ = _PassThroughParser


class _PassThroughParser(argparse.ArgumentParser):
    """Keeps the arguments it does not know (and everything after ``--``) as ``pytest_args``."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extra = super().parse_known_args(args, namespace)
        if extra[:1] == ["--"]:
            extra = extra[1:]
        parsed.pytest_args = [*(getattr(parsed, "pytest_args", None) or []), *extra]
        return parsed, []


def rules_command(subparsers: Any) -> None:
    """Add ``nestq rules`` to the ``nestq`` command's sub-parsers."""
    parser = subparsers.add_parser(
        "rules",
        help="list the conformance rules (id, level, capabilities, what each checks, the hint)",
        description="List the rule catalogue, read from the conformance suite's test functions.",
    )
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print the catalogue as Markdown (docs/rules.md)")
    parser.set_defaults(func=main_rules)


def _pytest_args(args: argparse.Namespace, suite: Path, report_dir: Path, *, scratch: bool = False) -> list[str]:
    if args.driver:
        named = [f"--nestq-driver={args.driver}"]
    elif os.environ.get("NESTQ_DRIVER"):
        named = []  # the plugin reads NESTQ_DRIVER itself, and its header then says that is where it came from
    else:
        named = [f"--nestq-driver={DEFAULT_DRIVER}"]
    built = [
        str(suite),
        "-p",
        "nestq",
        *named,
        f"--nestq-report={report_dir}",
        *(["--nestq-report-scratch"] if scratch else []),
        # The suite alone: no configuration or conftest of the current project, no cache written into the suite.
        f"--config-file={os.devnull}",
        f"--rootdir={suite}",
        f"--confcutdir={suite}",
        "-p",
        "no:cacheprovider",
        # This command imported the kit before pytest could mark it for assertion rewriting; the kit needs none.
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        "-q",
        "--tb=short",
    ]
    if importlib.util.find_spec("pytest_asyncio") is not None:
        # Its warning about an unset option speaks to a project's configuration, and this run has none.
        built += ["-o", "asyncio_default_fixture_loop_scope=function"]
    if args.timeout_scale is not None:
        built.append(f"--nestq-timeout-scale={args.timeout_scale}")
    if args.keyword:
        built += ["-k", args.keyword]
    if args.exitfirst:
        built.append("-x")
    return built + list(args.pytest_args)


def main_check(args: argparse.Namespace) -> int:
    """Run the suite against the driver in-process and print the report card; return the exit code."""
    import pytest

    from nestq_conformance.catalogue import suite_dir
    from nestq_conformance.report import REPORT_FILES, render_table

    # argparse puts a lone pytest option given after `--` in DRIVER when DRIVER was left out.
    if args.driver is not None and args.driver.startswith("-"):
        args.pytest_args = [args.driver, *args.pytest_args]
        args.driver = None
    try:
        suite = suite_dir()
    except RuntimeError as exc:
        print(f"nestq check: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="nestq-check-") as scratch:
        report_dir = Path(args.report).resolve() if args.report else Path(scratch)
        code = int(pytest.main(_pytest_args(args, suite, report_dir, scratch=not args.report)))
        sys.stdout.flush()
        if code == pytest.ExitCode.USAGE_ERROR:
            return 2
        if code in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR):
            return 3
        report_path = report_dir / REPORT_FILES["json"]
        if not report_path.is_file():
            print(f"nestq check: pytest exited with {code} and wrote no report", file=sys.stderr)
            return 3
        report = json.loads(report_path.read_text(encoding="utf-8"))
    print()
    print(render_table(report))
    if args.report:
        print(f"\nreport: {report_dir / REPORT_FILES['markdown']} (JSON and badge beside it)")
    ran = report["totals"]["rules"] - report["totals"]["skipped"]
    if ran == 0:
        print("nestq check: no rule ran", file=sys.stderr)
        return 1
    return 0 if report["ok"] and code in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED) else 1


def main_rules(args: argparse.Namespace) -> int:
    """Print the catalogue read from the suite; return the exit code."""
    from nestq_conformance.catalogue import load_catalogue

    entries = load_catalogue()
    if args.json:
        print(json.dumps([e.as_dict() for e in entries], indent=2, ensure_ascii=False))
        return 0
    if args.markdown:
        from nestq_conformance.rulesdoc import render_markdown

        print(render_markdown(entries), end="")
        return 0
    print(f"{'RULE':<8}  {'LEVEL':<6}  {'REQUIRES':<28}  TITLE")
    for e in entries:
        r = e.rule
        print(f"{r.id:<8}  {r.level:<6}  {', '.join(r.requires) or '-':<28}  {r.title}")
        print(f"{'':<10}hint: {r.hint}")
    print(f"\n{len(entries)} rules")
    return 0
