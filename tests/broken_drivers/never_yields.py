"""Bug: the receive loops never give the event loop a turn while ready jobs whose handlers never await remain."""

from ._base import BrokenWorker, broken_harness


class Greedy(BrokenWorker):
    yield_every = None  # the bug: a backlog of handlers that never await holds the loop until it is empty


harness = broken_harness("never_yields", worker=Greedy)
