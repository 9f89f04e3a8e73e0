#!/usr/bin/env python3
"""Single-call enqueue, side by side in one process: raw redis-py LPUSH (async and sync) vs nestq_redis push_json.

`python benchmarks/peers/enqueue_ab.py REDIS_URL [--rounds 20] [--block 500]`

Each round runs `block` calls of each loop in turn (async LPUSH, sync LPUSH, push_json), so the compared loops
are milliseconds apart; the medians over the rounds and the ratios are printed. Runs with any venv where
nestq_redis is importable (the project's `.venv`, or `benchmarks/peers/.venv`). Point it at a server of your own,
never a shared one: it writes under the `enqueue-ab` prefix and deletes those keys at the end.
To compare with another version of the driver, put that version's `nestq_redis` first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import statistics
import time

import redis
import redis.asyncio
from nestq_redis import RedisConfig, RedisConnection

from nestq_spec import encode_job

PREFIX = "enqueue-ab"


async def measure(url: str, rounds: int, block: int) -> dict[str, float]:
    conn = RedisConnection(RedisConfig(url=url, key_prefix=PREFIX))
    await conn.push_json("q", {})  # connect and load the script outside the clock
    plain = redis.asyncio.Redis.from_url(url)
    await plain.ping()
    sync = redis.Redis.from_url(url)
    sync.ping()
    data = encode_job("q", {})  # the same bytes nestq stores for an empty payload
    raw_key = f"{PREFIX}:raw"
    rates: dict[str, list[float]] = {"raw-async LPUSH": [], "raw sync LPUSH": [], "nestq push_json": []}
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(block):
                await plain.lpush(raw_key, data)
            rates["raw-async LPUSH"].append(block / (time.perf_counter() - start))
            start = time.perf_counter()
            for _ in range(block):
                sync.lpush(raw_key, data)
            rates["raw sync LPUSH"].append(block / (time.perf_counter() - start))
            start = time.perf_counter()
            for _ in range(block):
                await conn.push_json("q", {})
            rates["nestq push_json"].append(block / (time.perf_counter() - start))
    finally:
        keys = [k async for k in plain.scan_iter(match=f"{PREFIX}:*", count=1000)]
        if keys:
            await plain.delete(*keys)
        await plain.aclose()
        sync.close()
        await conn.aclose()
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--block", type=int, default=500)
    args = parser.parse_args()
    medians = asyncio.run(measure(args.url, args.rounds, args.block))
    print(f"redis-py {importlib.metadata.version('redis')}; {args.rounds} rounds of {args.block} calls each, medians")
    for name, rate in medians.items():
        print(f"  {name:<16} {rate:>9,.0f}/s")
    nestq = medians["nestq push_json"]
    print(f"  push_json / async LPUSH: {nestq / medians['raw-async LPUSH']:.2f}")
    print(f"  push_json / sync LPUSH:  {nestq / medians['raw sync LPUSH']:.2f}")


if __name__ == "__main__":
    main()
