"""The suite's rules are sync tests running their own event loop: they work whatever async plugin a project uses."""

from __future__ import annotations

import pytest

from .conftest import WITH_DEAD_LETTERS, Kit

OWN_ASYNCIO_STRICT = """
import asyncio
import pytest

@pytest.mark.asyncio
async def test_own_async():
    await asyncio.sleep(0)
"""

OWN_ASYNCIO_AUTO = """
import asyncio

async def test_own_async():
    await asyncio.sleep(0)
"""

OWN_ANYIO = """
import anyio
import pytest

@pytest.fixture
def anyio_backend():
    return "asyncio"

@pytest.mark.anyio
async def test_own_async():
    await anyio.sleep(0)
"""


@pytest.mark.parametrize(
    ("own", "args"),
    [
        pytest.param(OWN_ASYNCIO_STRICT, ["-o", "asyncio_mode=strict"], id="asyncio-strict"),
        pytest.param(OWN_ASYNCIO_AUTO, ["-o", "asyncio_mode=auto"], id="asyncio-auto"),
        pytest.param(OWN_ANYIO, ["-p", "no:asyncio"], id="anyio"),
        pytest.param(OWN_ANYIO, ["-o", "asyncio_mode=strict"], id="anyio-beside-asyncio-strict"),
    ],
)
def test_fake_suite_beside_async_project_tests(kit: Kit, own: str, args: list[str]) -> None:
    kit.driver(extra=WITH_DEAD_LETTERS)
    kit.pytester.makepyfile(test_own=own)
    result = kit.run("--nestq-driver=fakedriver", *args)
    # ZZA-003 calls asyncio.run() inside the rule: it would fail if a plugin left a loop running around sync tests.
    result.assert_outcomes(passed=6, skipped=3)
