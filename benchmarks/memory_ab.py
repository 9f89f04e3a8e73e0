"""``memory_bench`` of two checkouts side by side: rounds alternate between them, each round in a fresh process.

A loaded machine moves wall-clock figures by 2x within minutes; alternating the checkouts round by round (A B B A
A B ...) gives both the same share of every disturbance, and the per-round ratio (driver / bare loop, measured in the
same process seconds apart) cancels most of the rest. Each round prints the load average it ran under.

Run: ``.venv/bin/python benchmarks/memory_ab.py OTHER_CHECKOUT [--rounds R] [--jobs N]``; this checkout is "this".
Each checkout runs its own ``benchmarks/memory_bench.py`` with its own ``nestq_spec`` and ``nestq_memory`` (put first
on ``sys.path``), under this interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import asyncio, json, sys, time
import nestq_spec, nestq_memory
from memory_bench import bare_loop, memory_driver
jobs, inner = int(sys.argv[1]), int(sys.argv[3])
for path in (nestq_spec.__file__, nestq_memory.__file__):
    assert path.startswith(sys.argv[2]), f"{path} is not from {sys.argv[2]}"
rates = {}
for name, bench in (("bare", bare_loop), ("c1", memory_driver(1)), ("c10", memory_driver(10))):
    asyncio.run(bench(200))  # warm up: imports, lazy set-up
    rates[name] = max(jobs / asyncio.run(bench(jobs)) for _ in range(inner))
print(json.dumps(rates))
"""


def one_round(tree: Path, jobs: int, inner: int) -> dict[str, float]:
    """One process of ``tree``'s code: bare loop, memory driver at concurrency 1 and 10, best jobs per second of
    ``inner`` runs each."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(tree / p) for p in ("", "reference_drivers", "conformance"))}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(jobs), str(tree), str(inner)],
        cwd=tree / "benchmarks", env=env, capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    """Alternate the two checkouts and print every round, then the median ratio per concurrency."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (for instance a worktree of main)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per checkout")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--inner", type=int, default=3, help="runs per workload in a round; the best counts")
    args = parser.parse_args()
    trees = {"this": Path(__file__).resolve().parent.parent, "other": args.other.resolve()}
    ratios: dict[str, dict[str, list[float]]] = {name: {"c1": [], "c10": []} for name in trees}
    print(f"this = {trees['this']}, other = {trees['other']}; {args.jobs} jobs per run, best of {args.inner} per round")
    print(f"{'round':<6} {'tree':<6} {'bare/s':>9} {'c1/s':>9} {'c10/s':>9} {'c1 ratio':>9} {'c10 ratio':>9}  load avg")
    for i in range(args.rounds):
        order = ["this", "other"] if i % 2 == 0 else ["other", "this"]
        for name in order:
            rates = one_round(trees[name], args.jobs, args.inner)
            load = os.getloadavg()[0]
            c1, c10 = rates["c1"] / rates["bare"], rates["c10"] / rates["bare"]
            ratios[name]["c1"].append(c1)
            ratios[name]["c10"].append(c10)
            print(f"{i + 1:<6} {name:<6} {rates['bare']:>9,.0f} {rates['c1']:>9,.0f} {rates['c10']:>9,.0f} "
                  f"{c1:>9.2f} {c10:>9.2f}  {load:.2f}", flush=True)
    print("median ratio driver / bare loop (min..max):")
    for name in trees:
        for conc in ("c1", "c10"):
            values = ratios[name][conc]
            print(f"  {name:<6} {conc:<4} {statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f})")


if __name__ == "__main__":
    main()
