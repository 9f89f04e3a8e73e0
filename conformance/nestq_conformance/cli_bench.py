"""The ``nestq bench`` subcommand (an entry point in ``nestq.commands``): throughput and latency of any driver.

``nestq bench [DRIVER] [--n N] [--concurrency C] [--payload-bytes B] [--json PATH] [--format table|json]
[--report DIR]`` resolves DRIVER exactly as ``nestq check`` does, runs :func:`nestq_conformance.bench.run_bench`
with progress on stderr, and prints the figures on stdout. Exit codes: 0 measured; 1 a phase failed or ran past
its deadline; 2 usage error (unknown driver, an option out of range).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["bench_command", "main_bench"]

_EPILOG = """phases: enqueue (one push_json call per job), batch (push_many_json, when the producer has it), e2e (one
worker drains the N queued jobs at --concurrency), latency (push -> handler start on an idle worker, p50/p99).
exit codes: 0 measured; 1 a phase failed or passed its deadline; 2 usage error.
The redis driver's storage is chosen by its harness (NESTQ_REDIS__URL first): see docs/performance.md."""


def _positive_int(text: str) -> int:
    try:
        return int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def bench_command(subparsers: Any) -> None:
    """Add ``nestq bench`` to the ``nestq`` command's sub-parsers."""
    from nestq_conformance.bench import PHASES, BenchOptions

    defaults = BenchOptions()
    parser = subparsers.add_parser(
        "bench",
        help="measure a driver: enqueue rate, end-to-end jobs/s of one worker, push-to-start latency",
        description="Benchmark DRIVER (default: memory) through its conformance harness.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "driver",
        nargs="?",
        default=None,
        metavar="DRIVER",
        help="an entry-point name in nestq.drivers, a module exposing `harness`, or package.module:attribute "
        "(default: $NESTQ_DRIVER, else memory)",
    )
    parser.add_argument("--n", type=_positive_int, default=defaults.n, metavar="N",
                        help=f"jobs per throughput phase (default {defaults.n})")
    parser.add_argument("-c", "--concurrency", type=_positive_int, default=defaults.concurrency, metavar="C",
                        help=f"the worker's concurrency (default {defaults.concurrency})")
    parser.add_argument("--payload-bytes", type=_positive_int, default=defaults.payload_bytes, metavar="B",
                        help=f"approximate JSON size of each job's payload (default {defaults.payload_bytes})")
    parser.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size, metavar="K",
                        help=f"payloads per push_many_json call (default {defaults.batch_size})")
    parser.add_argument("--latency-samples", type=_positive_int, default=defaults.latency_samples, metavar="S",
                        help=f"latency samples; 0 skips the phase (default {defaults.latency_samples})")
    parser.add_argument("--warmup", type=_positive_int, default=defaults.warmup, metavar="W",
                        help=f"latency pushes discarded before the samples (default {defaults.warmup})")
    parser.add_argument("--latency-gap", type=float, default=defaults.latency_gap, metavar="SECONDS",
                        help=f"pause between latency samples, so the worker is idle (default {defaults.latency_gap})")
    parser.add_argument("--phases", default=",".join(PHASES), metavar="LIST",
                        help=f"comma-separated phases to run (default {','.join(PHASES)})")
    parser.add_argument("--timeout", type=float, default=defaults.phase_timeout, metavar="SECONDS",
                        help=f"deadline for one phase (default {defaults.phase_timeout:g})")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="what stdout shows")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH ('-' for stdout)")
    parser.add_argument("--report", metavar="DIR",
                        help="also write nestq-bench.json and nestq-bench.md into DIR (beside nestq check's report)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(func=main_bench, _bench_parser=parser)


def main_bench(args: argparse.Namespace) -> int:
    """Resolve the driver, run the bench with progress on stderr, print the figures; return the exit code."""
    from nestq_conformance.bench import (
        BenchError,
        BenchOptions,
        Progress,
        render_table,
        run_bench,
        write_bench_files,
    )
    from nestq_conformance.cli import DEFAULT_DRIVER
    from nestq_conformance.resolve import DriverError, resolve_harness

    def usage(message: str) -> int:
        print(f"nestq bench: error: {message}", file=sys.stderr)
        return 2

    try:
        options = BenchOptions(
            n=args.n,
            concurrency=args.concurrency,
            payload_bytes=args.payload_bytes,
            batch_size=args.batch_size,
            latency_samples=args.latency_samples,
            warmup=args.warmup,
            latency_gap=args.latency_gap,
            phase_timeout=args.timeout,
            phases=tuple(dict.fromkeys(p.strip() for p in args.phases.split(",") if p.strip())),
        ).validate()
    except ValueError as exc:
        return usage(str(exc))
    spec = args.driver or os.environ.get("NESTQ_DRIVER") or DEFAULT_DRIVER
    try:
        choice = resolve_harness(spec)
    except DriverError as exc:
        return usage(str(exc))
    if not getattr(args, "verbose", False):
        # The drivers' INFO lines (worker start and stop) would break up the progress lines; -v keeps them.
        logging.getLogger("nestq").setLevel(logging.WARNING)
    progress = Progress(sys.stderr, enabled=not args.quiet)
    try:
        result = run_bench(choice.harness, options, spec=spec, origin=choice.origin, progress=progress)
    except ValueError as exc:
        return usage(str(exc))
    except BenchError as exc:
        print(f"nestq bench: FAILED: {exc}", file=sys.stderr)
        return 1
    data = result.as_dict()
    text = json.dumps(data, indent=2, allow_nan=False)
    if args.format == "json":
        print(text)
    else:
        print(render_table(data))
    if args.json == "-":
        if args.format != "json":
            print(text)
    elif args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
        progress.note(f"results written to {path}")
    if args.report:
        paths = write_bench_files(Path(args.report), data)
        progress.note(f"report: {paths['markdown']} (JSON beside it)")
    return 0
