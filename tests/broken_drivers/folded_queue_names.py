"""Bug: the storage folds queue names into keys (lower case, one separator), so look-alike queues share one."""

import re
from typing import Any

from nestq_memory import MemoryBroker

from ._base import broken_harness


def _fold(name: object) -> object:
    return re.sub(r"[.:_-]", "-", name.lower()) if isinstance(name, str) else name


class _FoldingDict(dict[Any, Any]):
    def __getitem__(self, key: object) -> Any:
        return super().__getitem__(_fold(key))

    def __setitem__(self, key: object, value: Any) -> None:
        super().__setitem__(_fold(key), value)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(_fold(key))

    def get(self, key: object, default: Any = None) -> Any:
        return super().get(_fold(key), default)


class FoldingBroker(MemoryBroker):
    def __init__(self) -> None:
        super().__init__()
        self._queues = _FoldingDict()  # the bug: "a.b", "a_b" and "A-B" are one queue


harness = broken_harness("folded_queue_names", broker=FoldingBroker())
