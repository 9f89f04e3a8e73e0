"""The ``nestq matrix`` subcommand (an entry point in ``nestq.commands``): every driver side by side.

``nestq matrix [DRIVER ...] [--report DIR] [--bench] [--markdown-into FILE] [--deadline SECONDS]
[--timeout-scale F] [--format summary|markdown|json]`` runs ``nestq check`` against each driver (default: every
entry point in ``nestq.drivers``), one after the other, each in a subprocess with its own report, then renders
the matrix. Exit codes: 0 every driver's run passed (``nestq check`` exited 0 for each); 1 a driver failed a
rule, or its run did not start (an environment error; the matrix is still rendered); 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["main_matrix", "matrix_command"]

_EPILOG = """Each driver runs as a complete `nestq check DRIVER --report DIR/DRIVER` in a subprocess of its own, so the
matrix cells are exactly what each driver's own report says. With --report DIR the matrix is written as
nestq-matrix.md, nestq-matrix.json (schema: nestq_conformance/matrix.schema.json) and nestq-matrix.html (one
self-contained page) beside the drivers' report folders; without it the reports go to a temporary folder.
exit codes: 0 every driver passed; 1 a driver failed a rule or could not run (environment error); 2 usage error."""


def matrix_command(subparsers: Any) -> None:
    """Add ``nestq matrix`` to the ``nestq`` command's sub-parsers."""
    from nestq_conformance.matrix import DEFAULT_BENCH_LATENCY_SAMPLES, DEFAULT_BENCH_N, DEFAULT_DEADLINE

    parser = subparsers.add_parser(
        "matrix",
        help="run the suite against every installed driver and render them side by side (Markdown, JSON, HTML)",
        description="Run the conformance suite against each DRIVER (default: every installed driver) and render the "
        "conformance matrix: rules as rows, drivers as columns.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "drivers",
        nargs="*",
        metavar="DRIVER",
        help="entry-point names in nestq.drivers, modules exposing `harness`, or package.module:attribute "
        "(default: every driver in nestq.drivers)",
    )
    parser.add_argument("--report", metavar="DIR",
                        help="write nestq-matrix.{md,json,html} into DIR, each driver's report into DIR/<driver>/")
    parser.add_argument("--bench", action="store_true",
                        help="also run `nestq bench` for each driver (small N) and add its figures as a row group")
    parser.add_argument("--bench-n", type=int, default=DEFAULT_BENCH_N, metavar="N",
                        help=f"jobs per bench throughput phase (default {DEFAULT_BENCH_N})")
    parser.add_argument("--bench-latency-samples", type=int, default=DEFAULT_BENCH_LATENCY_SAMPLES, metavar="S",
                        help=f"bench latency samples (default {DEFAULT_BENCH_LATENCY_SAMPLES})")
    parser.add_argument("--markdown-into", metavar="FILE",
                        help="also write the Markdown matrix into FILE (between its nestq-matrix markers when it has "
                        "them), without links to the report folders: for docs/matrix.md")
    parser.add_argument("--deadline", type=float, default=DEFAULT_DEADLINE, metavar="SECONDS",
                        help=f"kill a driver's suite run (and its bench run) after SECONDS "
                        f"(default {DEFAULT_DEADLINE:g})")
    parser.add_argument("--timeout-scale", type=float, metavar="F", help="passed to each `nestq check`")
    parser.add_argument("--format", choices=("summary", "markdown", "json"), default="summary",
                        help="what stdout shows at the end (default: the summary)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(func=main_matrix)


def _command_line(args: argparse.Namespace) -> str:
    """The command as a person would retype it (paths as given, the defaults left out)."""
    from nestq_conformance.matrix import DEFAULT_BENCH_LATENCY_SAMPLES, DEFAULT_BENCH_N, DEFAULT_DEADLINE

    parts = ["nestq", "matrix", *args.drivers]
    if args.bench:
        parts.append("--bench")
        if args.bench_n != DEFAULT_BENCH_N:
            parts += ["--bench-n", str(args.bench_n)]
        if args.bench_latency_samples != DEFAULT_BENCH_LATENCY_SAMPLES:
            parts += ["--bench-latency-samples", str(args.bench_latency_samples)]
    if args.timeout_scale is not None:
        parts += ["--timeout-scale", f"{args.timeout_scale:g}"]
    if args.deadline != DEFAULT_DEADLINE:
        parts += ["--deadline", f"{args.deadline:g}"]
    if args.report:
        parts += ["--report", args.report]
    if args.markdown_into:
        parts += ["--markdown-into", args.markdown_into]
    return shlex.join(parts)


def main_matrix(args: argparse.Namespace) -> int:
    """Run every driver, render and write the matrix, print the summary; return the exit code."""
    import jsonschema

    from nestq_conformance.matrix import (
        MATRIX_FILES,
        BenchPlan,
        MatrixProgress,
        load_matrix_schema,
        markdown_into,
        render_markdown,
        render_summary,
        run_matrix,
        write_matrix,
    )
    from nestq_conformance.resolve import installed_drivers

    def usage(message: str) -> int:
        print(f"nestq matrix: error: {message}", file=sys.stderr)
        return 2

    if args.deadline <= 0:
        return usage(f"--deadline must be > 0, got {args.deadline:g}")
    if args.timeout_scale is not None and args.timeout_scale <= 0:
        return usage(f"--timeout-scale must be > 0, got {args.timeout_scale:g}")
    if args.bench and (args.bench_n < 1 or args.bench_latency_samples < 0):
        return usage("--bench-n must be >= 1 and --bench-latency-samples >= 0")
    specs = list(dict.fromkeys(args.drivers)) or installed_drivers()
    if not specs:
        return usage("no driver is installed (no entry point in the group 'nestq.drivers') and none was named")
    bench = BenchPlan(args.bench_n, args.bench_latency_samples) if args.bench else None
    progress = MatrixProgress(sys.stderr, enabled=not args.quiet)
    progress.note(f"nestq matrix: {len(specs)} driver(s): {', '.join(specs)}")
    with tempfile.TemporaryDirectory(prefix="nestq-matrix-") as scratch:
        report_dir = Path(args.report).resolve() if args.report else Path(scratch)
        data = run_matrix(
            specs,
            report_dir,
            deadline=args.deadline,
            timeout_scale=args.timeout_scale,
            bench=bench,
            progress=progress,
            command=_command_line(args),
        )
        # The page is only as good as its data: a matrix that breaks its own schema is a bug, said loudly.
        jsonschema.Draft202012Validator(load_matrix_schema()).validate(data)
        if args.report:
            paths = write_matrix(report_dir, data)
        if args.markdown_into:
            markdown_into(Path(args.markdown_into), render_markdown(data, link_reports=False, embedded=True))
    if args.format == "json":
        print(json.dumps(data, indent=2, ensure_ascii=False))
    elif args.format == "markdown":
        print(render_markdown(data, link_reports=False), end="")
    else:
        print()
        print(render_summary(data))
    if args.report:
        print(f"\nmatrix: {paths['html']} ({MATRIX_FILES['markdown']} and {MATRIX_FILES['json']} beside it; "
              "each driver's own report in its folder)")
    if args.markdown_into:
        print(f"markdown written into {args.markdown_into}")
    return 0 if data["summary"]["passing_drivers"] == len(data["drivers"]) else 1
