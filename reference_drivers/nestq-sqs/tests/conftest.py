"""An SQS endpoint for the project's own tests: the embedded moto server, or ``NESTQ_SQS__ENDPOINT_URL``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nestq_sqs.harness import SqsHarness


@pytest.fixture(scope="module")
def sqs() -> Iterator[SqsHarness]:
    """A harness of its own (its own queue prefix; its own embedded server unless an endpoint is set)."""
    harness = SqsHarness()
    harness.session_start()
    try:
        yield harness
    finally:
        harness.session_end()
