"""A third-party driver's harness for ``nestq bench`` tests: the example app's fake driver (it has no batch push)."""

from __future__ import annotations

from nestq_conformance.capabilities import Capabilities
from nestq_conformance.harness import DriverHarness, SuiteSettings

from nestq_spec import ModuleLike
from tests.example_app.fake_driver import FakeQueueModule, FakeQueueWorkerModule


class FakeHarness(DriverHarness):
    name = "fake-example"
    capabilities = Capabilities()

    def describe(self) -> str:
        return "fake-example: the example app's in-process fake driver"

    def producer_module(self, settings: SuiteSettings) -> ModuleLike:
        return FakeQueueModule.for_root({"broker": "bench"})

    def worker_module(self, settings: SuiteSettings) -> ModuleLike:
        return FakeQueueWorkerModule


harness = FakeHarness()
