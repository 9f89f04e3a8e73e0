"""Per-job cost of the seam's encode and decode steps next to bare ``json.dumps``/``json.loads`` of the payload.

Run: ``.venv/bin/python benchmarks/envelope_bench.py [--repeat N] [--min-time SECONDS]``

Each figure is the median, over ``--repeat`` runs, of the time per call of a timeit loop sized to run at least
``--min-time`` seconds. The ratio is seam / bare: what wrapping, the strict checks and (where shown) decoding
into the handler's dataclass add over plain JSON. Schema validation is not on this path (it is opt-in).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import timeit
from collections.abc import Callable
from typing import Any

from nestq_spec import decode_payload, dumps_envelope, encode_job, to_json_value, unwrap, wrap


@dataclasses.dataclass
class Email:
    to: str
    subject: str
    body: str
    user_id: int
    tags: list[str]
    urgent: bool = False


@dataclasses.dataclass
class Line:
    sku: str
    qty: int
    price: float
    note: str | None = None


@dataclasses.dataclass
class Order:
    id: int
    customer: str
    lines: list[Line]
    meta: dict[str, str]


def _email() -> Email:
    return Email("ada@example.com", "Welcome to nestq", "Hello Ada, " * 8, 421337, ["signup", "welcome"])


def _order(lines: int) -> Order:
    return Order(
        90210,
        "Grace Hopper",
        [Line(f"SKU-{i:05d}", i % 7 + 1, 9.99 + i, None if i % 3 else "gift") for i in range(lines)],
        {"channel": "web", "coupon": "SPRING", "currency": "EUR"},
    )


def _bare_email(payload: Any) -> Email:
    return Email(**payload)


def _bare_order(payload: Any) -> Order:
    return Order(
        payload["id"], payload["customer"], [Line(**line) for line in payload["lines"]], payload["meta"]
    )


def _loops(timer: timeit.Timer, min_time: float) -> int:
    number = 1
    while timer.timeit(number) < min_time:
        number *= 2
    return number


def paired(bare: Callable[[], object], seam: Callable[[], object], repeat: int, min_time: float) -> tuple[float, float]:
    """Median microseconds per call of ``bare`` and ``seam``, timed alternately so that load drift hits both."""
    timers = timeit.Timer(bare), timeit.Timer(seam)
    numbers = [_loops(t, min_time) for t in timers]
    bare_runs, seam_runs = [], []
    for _ in range(repeat):
        bare_runs.append(timers[0].timeit(numbers[0]) / numbers[0])
        seam_runs.append(timers[1].timeit(numbers[1]) / numbers[1])
    return statistics.median(bare_runs) * 1e6, statistics.median(seam_runs) * 1e6


@dataclasses.dataclass
class Row:
    payload: str
    step: str
    bare: str
    seam: str
    bare_us: float
    seam_us: float

    @property
    def ratio(self) -> float:
        return self.seam_us / self.bare_us


def measure(repeat: int, min_time: float) -> list[Row]:
    cases: list[tuple[str, Any, type[Any], Callable[[Any], Any]]] = [
        ("email (6 fields)", _email(), Email, _bare_email),
        ("order (10 lines)", _order(10), Order, _bare_order),
        ("order (200 lines)", _order(200), Order, _bare_order),
    ]
    rows: list[Row] = []
    for name, job, job_type, build in cases:
        rows += _case(name, job, job_type, build, repeat, min_time)
    return rows


def _case(
    name: str, job: Any, job_type: type[Any], build: Callable[[Any], Any], repeat: int, min_time: float
) -> list[Row]:
    payload = to_json_value(job)
    bare_text = json.dumps(payload)
    data = dumps_envelope(payload)
    text = data.decode()
    assert unwrap(data) == payload
    assert decode_payload(unwrap(data), job_type) == job == build(json.loads(bare_text))
    steps: list[tuple[str, str, Callable[[], object], str, Callable[[], object]]] = [
        ("encode", "json.dumps(p)", lambda: json.dumps(payload),
         "json.dumps(wrap(p))", lambda: json.dumps(wrap(payload))),
        ("encode", "json.dumps(p)", lambda: json.dumps(payload),
         "encode_job(q, p)  [what push_json calls]", lambda: encode_job("bench", payload)),
        ("decode", "json.loads(t)", lambda: json.loads(bare_text),
         "unwrap(json.loads(t))", lambda: unwrap(json.loads(text))),
        ("decode", "json.loads(t)", lambda: json.loads(bare_text),
         "unwrap(data)  [strict UTF-8 + JSON]", lambda: unwrap(data)),
        ("decode+type", "json.loads(t)", lambda: json.loads(bare_text),
         "decode_payload(unwrap(data), Job)", lambda: decode_payload(unwrap(data), job_type)),
        ("decode+type", "Job(**json.loads(t)) by hand", lambda: build(json.loads(bare_text)),
         "decode_payload(unwrap(data), Job)", lambda: decode_payload(unwrap(data), job_type)),
        ("push (typed)", "json.dumps(asdict(job))", lambda: json.dumps(dataclasses.asdict(job)),
         "encode_job(q, to_json_value(job))", lambda: encode_job("bench", to_json_value(job))),
    ]
    rows = []
    for step, bare_label, bare, seam_label, seam in steps:
        bare_us, seam_us = paired(bare, seam, repeat, min_time)
        rows.append(Row(name, step, bare_label, seam_label, bare_us, seam_us))
    return rows


def render(rows: list[Row]) -> str:
    header = ("payload", "step", "bare", "bare us", "seam", "seam us", "ratio")
    table = [header] + [
        (r.payload, r.step, r.bare, f"{r.bare_us:.2f}", r.seam, f"{r.seam_us:.2f}", f"{r.ratio:.2f}x") for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    right = {3, 5, 6}

    def fmt(line: tuple[str, ...]) -> str:
        cells = zip(line, widths, strict=True)
        return "  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(cells))

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *(fmt(line) for line in table[1:])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timeit runs per figure; the median is shown")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds each timeit run lasts at least")
    args = parser.parse_args(argv)
    print(f"nestq envelope micro-benchmark: Python {platform.python_version()} on {platform.machine()}, "
          f"median of {args.repeat} runs of >= {args.min_time}s, microseconds per job")
    rows = measure(args.repeat, args.min_time)
    print(render(rows))
    worst = max((r for r in rows if r.bare.startswith("json.")), key=lambda r: r.ratio)
    print(f"\nhighest ratio over bare JSON: {worst.ratio:.2f}x ({worst.payload}, {worst.seam})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
