"""Suite-local fixtures built on the plugin's ``nestq_*`` fixtures."""

from __future__ import annotations

import pytest

from nestq_conformance.harness import DriverHarness, SuiteSettings
from nestq_conformance.kit import Scenario
from nestq_conformance.rules import rule_of


@pytest.fixture
def nq(
    request: pytest.FixtureRequest,
    nestq_harness: DriverHarness,
    nestq_settings: SuiteSettings,
    nestq_timeout_scale: float,
    nestq_driver_spec: str,
) -> Scenario:
    """A :class:`~nestq_conformance.kit.Scenario` for the rule being run (its id names the queues).

    The driver spec goes to worker subprocesses, which resolve the same driver the way the plugin did.
    """
    found = rule_of(request.function)
    nestq_harness.rule_start(found.id if found else request.function.__name__,
                             frozenset(found.requires) if found else frozenset())
    return Scenario(
        nestq_harness,
        nestq_settings,
        scale=nestq_timeout_scale,
        rule_id=found.id if found else request.function.__name__,
        driver_spec=nestq_driver_spec,
    )
