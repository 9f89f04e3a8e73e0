"""A tiny fake suite and a configurable fake driver, so the plugin is tested without the real suite."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Imported here so in-process pytester runs share these classes with this process (pytester drops the modules a
# run imported when it ends; a class imported again is another class), and so each run does not import hypothesis
# (which its pytest plugin does, for 0.7 s) again.
import hypothesis
import nestq_conformance.capabilities
import nestq_conformance.catalogue
import nestq_conformance.harness
import nestq_conformance.report
import nestq_conformance.resolve
import nestq_conformance.rules
import pytest

_PRELOADED = (hypothesis, nestq_conformance.capabilities, nestq_conformance.rules)

# pytest-asyncio warns in every run whose configuration leaves this unset.
COMMON = ("-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function")

FAKE_SUITE_A = '''
"""ZZA: the fake area: rules the plugin tests run."""

import asyncio

import pytest

from nestq_conformance.rules import rule


def _judge(harness, rule_id):
    assert rule_id not in harness.fail, f"expected {rule_id} to hold; seen the fake driver break it on purpose"


@rule("ZZA-001", "MUST", hint="check the first thing")
def test_zza_001(nestq_harness):
    """The first fake rule holds."""
    _judge(nestq_harness, "ZZA-001")


@rule("ZZA-002", "SHOULD", hint="check the order of the fake queue", requires=("ordering",))
def test_zza_002(nestq_harness):
    """Fake jobs arrive in push order."""
    _judge(nestq_harness, "ZZA-002")


@rule("ZZA-003", "MUST", hint="check the dead letters", probes=("dead_letters",))
def test_zza_003(nestq_harness):
    """The dead-letter probe answers."""
    asyncio.run(nestq_harness.dead_letters(None, "q"))
    _judge(nestq_harness, "ZZA-003")


@rule("ZZA-004", "MUST", hint="check the depth")
def test_zza_004(nestq_harness):
    """The queue depth probe answers (called without being listed)."""
    asyncio.run(nestq_harness.queue_depth(None, "q"))
    _judge(nestq_harness, "ZZA-004")


@rule("ZZA-005", "MAY", hint="check the retries", requires=("retries",))
def test_zza_005(nestq_harness):
    """Fake jobs are retried."""
    _judge(nestq_harness, "ZZA-005")


@pytest.mark.parametrize("n", [1, 2])
@rule("ZZA-006", "MUST", hint="check the settings")
def test_zza_006(nestq_settings, nestq_timeout_scale, nestq_capabilities, nestq_harness, n):
    """The suite's settings are scaled by the timeout scale."""
    assert nestq_settings.visibility_timeout == pytest.approx(1.0 * nestq_timeout_scale)
    assert nestq_settings.concurrency == 4
    assert nestq_capabilities is nestq_harness.capabilities
    _judge(nestq_harness, "ZZA-006")
'''

FAKE_SUITE_B = '''
"""ZZB: the second fake area."""

from nestq_conformance.rules import rule


@rule("ZZB-001", "MUST", hint="the second area's hint")
def test_zzb_001(nestq_harness):
    """The second area's rule holds."""
    assert "ZZB-001" not in nestq_harness.fail, "expected ZZB-001 to hold; seen it broken on purpose"
'''

FAKE_DRIVER = """
from pathlib import Path

from nestq_conformance import Capabilities, DriverHarness

EVENTS = Path(__file__).with_name("{module}-events.log")


class FakeHarness(DriverHarness):
    name = {name!r}
    capabilities = Capabilities(**{caps!r})
    expected_failures = {xfail!r}
    fail = frozenset({fail!r})

    def describe(self):
        return "fake storage, no server"

    def session_start(self):
        with EVENTS.open("a") as f:
            f.write("start\\n")

    def session_end(self):
        with EVENTS.open("a") as f:
            f.write("end\\n")

    def producer_module(self, settings):
        raise AssertionError("the fake suite builds no apps")

    def worker_module(self, settings):
        raise AssertionError("the fake suite builds no apps")
{extra}

harness = FakeHarness()


def factory():
    return FakeHarness()
"""

WITH_DEAD_LETTERS = """
    async def dead_letters(self, container, queue):
        return []
"""


@dataclass
class Kit:
    """Writes fake drivers into the pytester directory and runs pytest with the fake suite."""

    pytester: pytest.Pytester
    suite: Path

    def driver(
        self,
        module: str = "fakedriver",
        *,
        name: str = "fake",
        caps: Mapping[str, Any] | None = None,
        fail: Sequence[str] = (),
        xfail: Mapping[str, str] | None = None,
        extra: str = "",
    ) -> Path:
        source = FAKE_DRIVER.format(
            module=module, name=name, caps=dict(caps or {}), xfail=dict(xfail or {}), fail=sorted(fail), extra=extra
        )
        path = self.pytester.path / f"{module}.py"
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        return path

    def events(self, module: str = "fakedriver") -> list[str]:
        path = self.pytester.path / f"{module}-events.log"
        return path.read_text(encoding="utf-8").split() if path.exists() else []

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest(*COMMON, *args)

    def run_subprocess(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess(*COMMON, *args)

    def nestq(self, *args: str) -> pytest.RunResult:
        """Run the ``nestq`` command in a subprocess (pytester puts its directory on PYTHONPATH)."""
        return self.pytester.run(sys.executable, "-m", "nestq_spec.cli", *args, timeout=300)


@pytest.fixture
def kit(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Kit:
    """A fake suite outside the pytester directory, pointed at through NESTQ_SUITE_PATH, and no driver named."""
    suite = tmp_path_factory.mktemp("fakesuite")
    (suite / "test_fake_a.py").write_text(FAKE_SUITE_A, encoding="utf-8")
    (suite / "test_fake_b.py").write_text(FAKE_SUITE_B, encoding="utf-8")
    for name in ("NESTQ_DRIVER", "NESTQ_TIMEOUT_SCALE", "NESTQ_SUITE_PATH", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NESTQ_SUITE_PATH", str(suite))
    pytester.syspathinsert()
    return Kit(pytester, suite)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
