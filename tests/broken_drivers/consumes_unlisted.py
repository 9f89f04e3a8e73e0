"""Bug: the worker routes every @process method of the process, not only those the app's modules reach."""

from nestq_spec import Container, ProcessMethod, inventory

from ._base import BrokenWorker, broken_harness


class Greedy(BrokenWorker):
    def routes(self, container: Container) -> dict[str, tuple[ProcessMethod, ...]]:
        grouped: dict[str, tuple[ProcessMethod, ...]] = {}
        for method in inventory():  # the bug: no reachability filter
            grouped[method.queue] = (*grouped.get(method.queue, ()), method)
        return grouped


harness = broken_harness("consumes_unlisted", worker=Greedy)
