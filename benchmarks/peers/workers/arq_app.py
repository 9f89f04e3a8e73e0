"""arq worker: `arq arq_app.WorkerSettings --custom-log-dict arq_app.LOG_CONFIG`."""

from __future__ import annotations

import os
from typing import Any

from arq.connections import RedisSettings
from common import REDIS_URL, aincr

QUEUE_NAME = "peers:arq"


async def noop(ctx: dict[str, Any]) -> None:
    await aincr()


class WorkerSettings:
    functions = [noop]
    redis_settings = RedisSettings.from_dsn(REDIS_URL)
    queue_name = QUEUE_NAME
    max_jobs = 10  # arq's concurrency: at most 10 jobs (asyncio tasks) at once
    # arq polls its queue (a sorted set) every poll_delay seconds: 0.5 s by default, which is what
    # the benchmark runs. PEERS_ARQ_POLL_DELAY overrides it to see how much of arq's figure is that.
    poll_delay = float(os.environ.get("PEERS_ARQ_POLL_DELAY", "0.5"))
    # Everything else is arq's default (keep_result=3600 s, max_tries=5, job_timeout=300 s).


# arq logs two INFO lines per job by default; keep warnings only, like the other peers.
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "WARNING"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
}
