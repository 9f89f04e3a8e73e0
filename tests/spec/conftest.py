"""Fixtures of the nestq_spec tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nestq_spec import registry


@pytest.fixture
def sandbox() -> Iterator[None]:
    """Processors registered during the test leave the process-wide inventory when it ends."""
    inventory = list(registry._INVENTORY)
    seen = dict(registry._SEEN)
    yield
    registry._INVENTORY[:] = inventory
    registry._SEEN.clear()
    registry._SEEN.update(seen)
