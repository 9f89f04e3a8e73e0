"""Helpers the project's fault tests share: what a fault worker recorded, and polling with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path


def counts(path: Path) -> Counter[int]:
    """How many times each job number ran, from the lines a fault worker appends to ``path``."""
    if not path.exists():
        return Counter()
    return Counter(int(line) for line in path.read_text().split())


async def wait_for(predicate: Callable[[], bool], within: float, what: str) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)
