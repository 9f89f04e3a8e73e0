"""Mutation testing as a measurement: how many small bugs in a reference driver does the conformance suite see?

A small AST mutator (mutmut and cosmic-ray both rewrite files in place or need their own runner; this one works on
a copy). For each sampled mutant of a module the seam reaches (the memory broker and worker, the Redis worker and
store), the package is copied into a temporary folder with that one change, put first on ``PYTHONPATH`` (so it
shadows the editable install, nothing in the checkout is touched), and ``nestq check DRIVER -x`` runs: the
conformance suite alone is the test command. A mutant is *killed* when the check exits non-zero, *timeout* when
it runs past ``--timeout-factor`` times the clean run plus 30 s (the suite's own deadlines would fail it; the margin
is wide because a loaded machine slows a whole run, not only a mutant's), *survived* otherwise.

Only mutants in code the suite reaches are sampled: first the clean suite runs once under ``coverage`` (lines of
the target modules it executed, in the test process), and a mutant counts only when the statement it changes was
executed. A mutant of a line the suite never runs cannot be killed by it and says nothing about the rules.

Usage::

    nice -n 10 python benchmarks/mutate.py --driver memory --sample 60 --seed 12 --out mutants-memory.json
    nice -n 10 python benchmarks/mutate.py --driver redis --sample 40 --seed 12 --out mutants-redis.json
    # after rules were added: run the survivors (and timeouts) of a measurement again, keep the other outcomes
    nice -n 10 python benchmarks/mutate.py --driver memory --rerun mutants-memory.json --out mutants-memory.json

It prints generated / reached / sampled / killed / survived / timeouts and every survivor (file, line, what
changed), for triage in docs/conformance.md. ``--triage FILE`` (a JSON object: mutant key -> why it is
equivalent) makes it also print the share of non-equivalent mutants killed. CPU heavy: run it under ``nice``,
sampled. Needs ``coverage`` (``pip install coverage``) unless ``--no-coverage``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {
    "memory": ("nestq_memory", ["broker.py", "worker.py"]),
    "redis": ("nestq_redis", ["worker.py", "store.py"]),
}
"""The modules the seam reaches, per driver (operator and admin code is for the drivers' own tests)."""
OPERATOR_ONLY = {
    "memory": {"queues", "redrive", "purge_dead_letters", "purge", "__repr__"},
    "redis": {"queues", "dead_letter", "_for_dead", "redrive", "purge_dead", "trim_dead", "push_many", "_push_batch",
              "__repr__"},
}
"""Functions of those modules that only operator commands, admin APIs or batching reach: left out."""

_SWAP_CMP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}  # fmt: skip
_SWAP_BIN: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
}  # fmt: skip


@dataclass
class Mutant:
    """One change to one module."""

    file: str
    index: int
    line: int
    kind: str
    before: str
    after: str
    outcome: str = "pending"
    seconds: float = 0.0
    killed_by: str = ""
    """The rules the check reported failed (for triage: which rule sees the bug)."""

    @property
    def key(self) -> str:
        """What names the mutant in a triage file: file, line, candidate index, kind and the change."""
        return f"{self.file}:{self.line}#{self.index} {self.kind}: {self.before} -> {self.after}"


def _docstring_ids(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _is_log(call: ast.AST) -> bool:
    """A logging call: dropping it changes nothing the suite may judge (an equivalent mutant), so none is made."""
    func = call.func if isinstance(call, ast.Call) else None
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("log", "logger")


def _operator_nodes(tree: ast.AST, names: set[str]) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in names:
            found.update(id(inner) for inner in ast.walk(node))
    return found


def _candidates(tree: ast.AST, leave_out: set[str] = frozenset()) -> list[tuple[ast.AST, str]]:  # type: ignore[assignment]
    """Every (node, kind) this mutator can change, in a stable order."""
    skip = _docstring_ids(tree) | _operator_nodes(tree, set(leave_out))
    out: list[tuple[ast.AST, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _SWAP_CMP:
            out.append((node, "compare"))
        elif isinstance(node, ast.BinOp) and type(node.op) in _SWAP_BIN:
            out.append((node, "arith"))
        elif isinstance(node, ast.AugAssign) and type(node.op) in _SWAP_BIN:
            out.append((node, "augassign"))
        elif isinstance(node, ast.BoolOp):
            out.append((node, "boolop"))
        elif isinstance(node, ast.If | ast.While):
            out.append((node, "negate"))
        elif isinstance(node, ast.Constant) and id(node) not in skip and type(node.value) in (int, float, bool):
            out.append((node, "constant"))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call | ast.Await) and not _is_log(node.value):
            out.append((node, "drop-call"))
        elif isinstance(node, ast.Return) and node.value is not None:
            out.append((node, "return-none"))
    return out


def _mutate(node: ast.AST, kind: str) -> ast.AST:
    """A changed copy of ``node``."""
    new = copy.deepcopy(node)
    if kind == "compare" and isinstance(new, ast.Compare):
        new.ops = [_SWAP_CMP[type(new.ops[0])]()]
    elif kind in ("arith", "augassign") and isinstance(new, ast.BinOp | ast.AugAssign):
        new.op = _SWAP_BIN[type(new.op)]()
    elif kind == "boolop" and isinstance(new, ast.BoolOp):
        new.op = ast.Or() if isinstance(new.op, ast.And) else ast.And()
    elif kind == "negate" and isinstance(new, ast.If | ast.While):
        new.test = ast.UnaryOp(op=ast.Not(), operand=new.test)
    elif kind == "constant" and isinstance(new, ast.Constant):
        value = new.value
        if isinstance(value, bool):
            new.value = not value
        else:
            new.value = value + 1 if value == 0 else (0 if value == 1 else value * 2)
    elif kind == "drop-call" and isinstance(new, ast.Expr):
        return ast.Pass()
    elif kind == "return-none" and isinstance(new, ast.Return):
        new.value = ast.Constant(None)
    return new


class _Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST, replacement: ast.AST) -> None:
        self.target, self.replacement = target, replacement

    def visit(self, node: ast.AST) -> ast.AST:
        if node is self.target:
            return self.replacement
        return super().visit(node)


def _statement_lines(tree: ast.AST) -> dict[int, int]:
    """id(node) -> the first line of the innermost statement holding it (what coverage reports as executed)."""
    lines: dict[int, int] = {}

    def visit(node: ast.AST, statement: int) -> None:
        here = node.lineno if isinstance(node, ast.stmt) else statement
        lines[id(node)] = here
        for child in ast.iter_child_nodes(node):
            visit(child, here)

    visit(tree, 0)
    return lines


def generate(driver: str, reached: dict[str, set[int]] | None = None) -> list[tuple[Mutant, str]]:
    """Every mutant of the driver's target modules, with the mutated module's source.

    ``reached``: per file, the statement lines the clean suite executed; mutants elsewhere are left out.
    """
    package, files = TARGETS[driver]
    out = []
    for name in files:
        path = ROOT / "reference_drivers" / package / name
        source = path.read_text("utf-8")
        leave_out = OPERATOR_ONLY[driver]
        for index in range(len(_candidates(ast.parse(source), leave_out))):
            tree = ast.parse(source)
            node, kind = _candidates(tree, leave_out)[index]
            if reached is not None and _statement_lines(tree)[id(node)] not in reached.get(name, set()):
                continue
            replacement = _mutate(node, kind)
            before = ast.unparse(node).splitlines()[0][:100] if not isinstance(node, ast.If | ast.While) else (
                ast.unparse(node.test)[:100])
            after = ast.unparse(replacement).splitlines()[0][:100] if not isinstance(replacement, ast.If | ast.While) \
                else "not (" + ast.unparse(node.test)[:90] + ")"
            if before == after:
                continue
            mutated = ast.fix_missing_locations(_Replace(node, replacement).visit(tree))
            try:
                text = ast.unparse(mutated)
                compile(text, name, "exec")
            except (SyntaxError, ValueError):
                continue
            out.append((Mutant(name, index, getattr(node, "lineno", 0), kind, before, after), text))
    return out


_FAILED_ROW = re.compile(r"^([A-Z]{3}-\d{3})\s+(?:MUST|SHOULD|MAY)\s+(?:failed|error)\b", re.M)


def _check(driver: str, shadow: Path | None, timeout: float, wrap: list[str] | None = None,
           failed: list[str] | None = None) -> tuple[str, float]:
    env = dict(os.environ)
    env.pop("NESTQ_DRIVER", None)
    if shadow is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(shadow), *filter(None, [env.get("PYTHONPATH")])])
    cmd = [sys.executable, *(wrap or []), "-m", "nestq_spec.cli", "check", driver, "-x"]
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=tempfile.gettempdir(), env=env, capture_output=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - started
    took = time.monotonic() - started
    if failed is not None:
        failed.extend(_FAILED_ROW.findall(done.stdout.decode("utf-8", "replace")))
    return ("survived" if done.returncode == 0 else "killed"), took


def reached_lines(driver: str) -> tuple[dict[str, set[int]], float]:
    """Run the clean suite once under coverage: the statement lines of each target module it executed."""
    package, files = TARGETS[driver]
    paths = {name: ROOT / "reference_drivers" / package / name for name in files}
    with tempfile.TemporaryDirectory(prefix="nestq-coverage-") as tmp:
        data, report = Path(tmp) / ".coverage", Path(tmp) / "coverage.json"
        include = ",".join(str(p) for p in paths.values())
        outcome, took = _check(driver, None, 600.0, ["-m", "coverage", "run", f"--data-file={data}",
                                                     f"--include={include}"])
        if outcome != "survived":
            raise SystemExit(f"the clean driver does not pass its suite under coverage ({outcome})")
        subprocess.run([sys.executable, "-m", "coverage", "json", f"--data-file={data}", "-o", str(report)],
                       check=True, capture_output=True)
        measured = json.loads(report.read_text("utf-8"))["files"]
    by_path = {str(Path(k).resolve()): v for k, v in measured.items()}
    return {name: set(by_path.get(str(p.resolve()), {}).get("executed_lines", [])) for name, p in paths.items()}, took


def _run_one(driver: str, mutant: Mutant, text: str, timeout: float) -> None:
    package, _ = TARGETS[driver]
    with tempfile.TemporaryDirectory(prefix="nestq-mutant-") as tmp:
        shadow = Path(tmp)
        shutil.copytree(ROOT / "reference_drivers" / package, shadow / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
        (shadow / package / mutant.file).write_text(text, "utf-8")
        failed: list[str] = []
        mutant.outcome, mutant.seconds = _check(driver, shadow, timeout, failed=failed)
        mutant.killed_by = " ".join(failed)


def main() -> int:
    """Generate, select what the suite reaches, sample, run; print the figures and the survivors."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--driver", choices=sorted(TARGETS), default="memory")
    parser.add_argument("--sample", type=int, default=60, help="how many mutants to run (a seeded random sample)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--budget", type=float, default=900.0, help="stop starting mutants after this many seconds")
    parser.add_argument("--out", type=Path, help="write every result as JSON here")
    parser.add_argument("--no-coverage", action="store_true", help="sample from every mutant, reached or not")
    parser.add_argument("--rerun", type=Path, help="a previous --out: run its survivors and timeouts again")
    parser.add_argument("--timeout-factor", type=float, default=6.0,
                        help="a mutant's run is a timeout past this many clean runs plus 30 s")
    parser.add_argument("--triage", type=Path, help="JSON object: mutant key -> why it is equivalent")
    args = parser.parse_args()

    outcome, baseline = _check(args.driver, None, 300.0)
    if outcome != "survived":
        print(f"the clean driver does not pass its suite ({outcome}); nothing to measure", file=sys.stderr)
        return 2
    every = generate(args.driver)
    previous: dict[str, object] = {}
    equivalent: dict[str, str] = json.loads(args.triage.read_text("utf-8")) if args.triage else {}
    if args.rerun is not None:
        previous = json.loads(args.rerun.read_text("utf-8"))
        by_key = {m.key: (m, text) for m, text in every}
        chosen = []
        for entry in previous["mutants"]:  # type: ignore[attr-defined]
            known = Mutant(**{k: v for k, v in entry.items() if k in Mutant.__dataclass_fields__})
            # An equivalent survivor survives any suite: it is kept as it is, not run again.
            if known.outcome in ("survived", "timeout", "pending") and known.key in by_key and (
                    known.key not in equivalent):
                chosen.append(by_key[known.key])
            else:
                chosen.append((known, ""))
        reached_count = int(previous.get("reached", len(every)))  # type: ignore[call-overload]
        print(f"{args.driver}: re-running the survivors and timeouts of {args.rerun} "
              f"({len(chosen)} mutants); clean run {baseline:.1f} s", flush=True)
    else:
        mutants = every
        if not args.no_coverage:
            reached, took = reached_lines(args.driver)
            mutants = generate(args.driver, reached)
            print(f"coverage run {took:.1f} s: {sum(map(len, reached.values()))} statement lines reached", flush=True)
        reached_count = len(mutants)
        rng = random.Random(args.seed)
        chosen = rng.sample(mutants, min(args.sample, len(mutants)))
        print(f"{args.driver}: {len(every)} mutants generated, {reached_count} in code the suite reaches, "
              f"{len(chosen)} sampled (seed {args.seed}); clean run {baseline:.1f} s", flush=True)
    started = time.monotonic()
    for n, (mutant, text) in enumerate(chosen, 1):
        if not text:
            continue  # an outcome kept from the measurement being re-run
        if time.monotonic() - started > args.budget:
            print(f"budget of {args.budget:.0f} s spent after {n - 1} mutants", flush=True)
            break
        _run_one(args.driver, mutant, text, args.timeout_factor * baseline + 30)
        print(f"[{n}/{len(chosen)}] {mutant.outcome:<8} {mutant.file}:{mutant.line} {mutant.kind}: "
              f"{mutant.before!r} -> {mutant.after!r} ({mutant.seconds:.1f} s) {mutant.killed_by}", flush=True)
    ran = [m for m, _ in chosen if m.outcome != "pending"]
    counts = {k: sum(1 for m in ran if m.outcome == k) for k in ("killed", "survived", "timeout")}
    print(f"\n{args.driver}: generated {len(every)}, reached {reached_count}, sampled {len(chosen)}, ran {len(ran)}: "
          f"killed {counts['killed']}, survived {counts['survived']}, timeouts {counts['timeout']}")
    for m in ran:
        if m.outcome == "survived":
            why = f"  [equivalent: {equivalent[m.key]}]" if m.key in equivalent else ""
            print(f"  SURVIVED {m.key}{why}")
    if args.triage:
        counted = [m for m in ran if m.key not in equivalent]
        caught = sum(1 for m in counted if m.outcome != "survived")
        share = 100.0 * caught / len(counted) if counted else 100.0
        print(f"non-equivalent: {len(counted)}, killed (timeouts included): {caught}, that is {share:.1f} %")
    if args.out:
        args.out.write_text(json.dumps({"driver": args.driver, "generated": len(every), "reached": reached_count,
                                        "sampled": len(chosen), "seed": previous.get("seed", args.seed),
                                        "baseline_seconds": baseline, "counts": counts,
                                        "mutants": [asdict(m) for m in ran]}, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
