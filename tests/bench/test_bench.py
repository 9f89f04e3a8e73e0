"""``nestq bench``: the command (a subprocess, as installed), its options, its JSON, and the engine in-process.

Small N everywhere; no assertion is about how fast anything is, only about what was measured and reported.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nestq_conformance.bench import (
    BENCH_FILES,
    PHASES,
    BenchOptions,
    Progress,
    batch_method,
    make_payload,
    percentile,
    render_markdown,
    render_table,
    run_bench,
)
from nestq_memory.harness import harness as memory_harness

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--n", "300", "--latency-samples", "20", "--warmup", "2", "--latency-gap", "0", "--timeout", "60"]


def nestq(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "nestq_spec.cli", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env=full_env,
        cwd=ROOT,
        check=False,
    )


def check_shape(data: dict[str, Any], n: int, samples: int, *, batch: bool = True) -> None:
    assert data["tool"] == "nestq bench"
    assert data["schema_version"] == 1
    assert set(data) >= {"date", "driver", "machine", "options", "settings", "results", "notes"}
    assert data["options"]["n"] == n
    assert data["options"]["phases"] == list(PHASES)
    assert data["machine"]["cores"] >= 1
    results = data["results"]
    single = results["enqueue_single"]
    assert single["jobs"] == n
    assert single["timed_calls"] == n - 1
    assert single["jobs_per_s"] > 0
    if batch:
        assert results["enqueue_batch"]["method"] == "push_many_json"
        assert results["enqueue_batch"]["jobs"] == n
        assert results["enqueue_batch"]["jobs_per_s"] > 0
    else:
        assert results["enqueue_batch"] is None
    e2e = results["end_to_end"]
    assert e2e["jobs"] == n
    assert e2e["jobs_per_s"] > 0
    assert e2e["extra_executions"] >= 0
    assert e2e["first_job_s"] >= 0
    latency = results["latency"]
    assert latency["samples"] == samples
    assert 0 < latency["min_ms"] <= latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]


# ---------------------------------------------------------------------------------------------------------------
# The command


def test_bench_memory_prints_the_table_and_progress() -> None:
    result = nestq("bench", "memory", *SMALL)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("nestq bench memory: memory: the process-wide in-memory broker")
    assert "N=300, concurrency 10, payload ~64 B" in out
    for metric in (
        "enqueue, one call per job",
        "enqueue, batched (push_many_json)",
        "end-to-end, 1 worker, concurrency 10",
        "steady (first job -> last)",
        "latency push -> handler start, p50",
        "latency push -> handler start, p99",
    ):
        assert metric in out
    assert "jobs/s" in out
    assert " ms" in out
    # Progress goes to stderr, a line per phase (stderr is not a terminal here), never to stdout.
    err = result.stderr
    assert "nestq bench: driver memory" in err
    assert "  enqueue, one push_json call per job:" in err
    assert "  latency, push -> handler start, 20 samples on an idle worker:" in err
    assert "INFO" not in err
    assert "enqueue, one push_json call per job" not in out


def test_bench_json_format_json_file_and_report(tmp_path: Path) -> None:
    path = tmp_path / "out" / "bench.json"
    report = tmp_path / "report"
    result = nestq("bench", "memory", *SMALL, "-c", "4", "--format", "json", "--json", str(path),
                   "--report", str(report), "-q")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # -q: no progress
    data = json.loads(result.stdout)
    check_shape(data, 300, 20)
    assert data["options"]["concurrency"] == 4
    assert data["settings"]["concurrency"] == 4
    assert data["driver"]["name"] == "memory"
    assert data["driver"]["origin"].startswith("entry point nestq.drivers:memory")
    assert json.loads(path.read_text()) == data
    assert json.loads((report / BENCH_FILES["json"]).read_text()) == data
    md = (report / BENCH_FILES["markdown"]).read_text()
    assert md.startswith("# nestq bench: memory")
    assert "| end-to-end, 1 worker, concurrency 4 |" in md


def test_bench_a_subset_of_phases() -> None:
    result = nestq("bench", "memory", *SMALL, "--phases", "latency", "--format", "json", "-q")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["options"]["phases"] == ["latency"]
    res = data["results"]
    assert res["enqueue_single"] is None
    assert res["enqueue_batch"] is None
    assert res["end_to_end"] is None
    assert res["latency"]["samples"] == 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "0"], "--n must be >= 1, got 0"),
        (["--concurrency", "0"], "--concurrency must be between 1 and 10000, got 0"),
        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["--payload-bytes", "999999999"], "--payload-bytes must be between 0 and 16777216"),
        (["--latency-gap", "5"], "--latency-gap must be between 0 and 1 second"),
        (["--timeout", "0"], "--timeout must be > 0"),
        (["--phases", "e2e"], "e2e drains the jobs the enqueue phase pushed; add enqueue"),
        (["--phases", "enqueue,warp"], "unknown phase(s) warp; known: enqueue, batch, e2e, latency"),
        (["--phases", ","], "--phases must name at least one phase"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    result = nestq("bench", "memory", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_non_numeric_option_is_an_argparse_error() -> None:
    result = nestq("bench", "memory", "--n", "lots")
    assert result.returncode == 2
    assert "expected a whole number, got 'lots'" in result.stderr


def test_unknown_driver_exits_2_with_the_installed_names() -> None:
    result = nestq("bench", "memroy")
    assert result.returncode == 2
    assert "unknown nestq driver 'memroy'" in result.stderr
    assert "Did you mean 'memory'?" in result.stderr


def test_a_payload_above_the_declared_limit_is_refused() -> None:
    result = nestq("bench", "memory", "--payload-bytes", str(8 * 1024 * 1024))
    assert result.returncode == 2
    assert "above what the driver declares it accepts" in result.stderr


def test_third_party_driver_without_a_batch_push() -> None:
    result = nestq("bench", "tests.bench.fake_harness:harness", *SMALL)
    assert result.returncode == 0, result.stderr
    assert "nestq bench fake-example: fake-example: the example app's in-process fake driver" in result.stdout
    assert "enqueue, batched" in result.stdout
    assert "the producer has no push_many_json()" in result.stdout
    assert "n/a (the producer has no async push_many_json)" in result.stderr


def test_bench_is_listed_in_nestq_help() -> None:
    result = nestq("--help")
    assert result.returncode == 0
    assert "bench" in result.stdout
    result = nestq("bench", "--help")
    assert result.returncode == 0
    for option in ("--n", "--concurrency", "--payload-bytes", "--json", "--format", "--report", "--phases"):
        assert option in result.stdout


# ---------------------------------------------------------------------------------------------------------------
# The engine, in-process


def test_run_bench_memory_in_process_with_progress() -> None:
    stream = io.StringIO()
    options = BenchOptions(n=200, latency_samples=10, warmup=1, latency_gap=0.0, phase_timeout=60)
    result = run_bench(memory_harness, options, spec="memory", progress=Progress(stream))
    data = result.as_dict()
    check_shape(data, 200, 10)
    json.dumps(data, allow_nan=False)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("nestq bench: driver memory")
    assert [line.split(":")[0].strip() for line in lines[1:] if not line.endswith("...")] == [
        "enqueue, one push_json call per job",
        "enqueue, batched (push_many_json)",
        "end-to-end, 200 queued no-op jobs, 1 worker, concurrency 10",
        "latency, push -> handler start, 10 samples on an idle worker",
    ]
    table = render_table(data)
    assert "end-to-end, 1 worker, concurrency 10" in table
    assert render_markdown(data).count("\n| ") >= 6


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_updates_in_place_on_a_terminal() -> None:
    stream = _Tty()
    progress = Progress(stream)
    progress.start("phase")
    progress.update(5, 10)
    progress.update(10, 10)
    progress.finish("done")
    text = stream.getvalue()
    assert text.startswith("  phase ...")
    assert "\r  phase ... 10/10" in text
    assert text.endswith("\r\x1b[K  phase: done\n")
    quiet = io.StringIO()
    off = Progress(quiet, enabled=False)
    off.start("x")
    off.finish("y")
    assert quiet.getvalue() == ""


def test_redis_driver_on_fakeredis(monkeypatch: pytest.MonkeyPatch) -> None:
    from nestq_redis.harness import RedisHarness

    monkeypatch.setenv("NESTQ_REDIS__URL", "fakeredis://nestq-bench-test")
    options = BenchOptions(n=150, latency_samples=5, warmup=1, latency_gap=0.0, phase_timeout=60)
    data = run_bench(RedisHarness(), options, spec="redis").as_dict()
    check_shape(data, 150, 5)
    assert "fakeredis" in data["driver"]["describe"]


def _real_redis_url() -> str:
    url = os.environ.get("NESTQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but no Redis answers at {url}")
        pytest.skip(f"no Redis answers at {url}")
    finally:
        client.close()
    return url


def test_redis_driver_on_a_real_server_leaves_no_keys() -> None:
    url = _real_redis_url()
    result = nestq("bench", "redis", *SMALL, "--format", "json", "-q", env={"NESTQ_REDIS__URL": url})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    check_shape(data, 300, 20)
    prefix = data["driver"]["describe"].rsplit("key prefix ", 1)[1]
    import redis

    client = redis.Redis.from_url(url)
    try:
        assert list(client.scan_iter(match=f"{prefix}:*")) == []  # the harness's session_end cleaned up
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def test_percentile_is_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) != percentile([], 50)  # NaN


def test_make_payload_has_the_requested_size() -> None:
    for size in (0, 10, 64, 1000):
        payload = make_payload(12, size)
        assert payload["n"] == 12
        encoded = len(json.dumps(payload, separators=(",", ":")))
        assert encoded == max(size, len('{"n":12,"pad":""}'))


def test_batch_method_is_found_by_duck_typing() -> None:
    class Async:
        async def push_many_json(self, queue: str, payloads: list[Any]) -> None: ...

    class Sync:
        def push_many_json(self, queue: str, payloads: list[Any]) -> None: ...

    assert batch_method(Async()) is not None
    assert batch_method(Sync()) is None
    assert batch_method(object()) is None


def test_options_validate_raises_value_error() -> None:
    with pytest.raises(ValueError, match="--n must be >= 1"):
        BenchOptions(n=0).validate()
    assert BenchOptions().validate().phases == PHASES
