"""Let hypothesis-jsonschema generate objects under current Hypothesis.

hypothesis-jsonschema 0.23.1 (the latest release) draws object properties with ``many(...).more()``, a private
Hypothesis API that newer Hypothesis releases replaced by ``with many(...) as elements: for _ in elements:``; every
object schema then fails with ``AttributeError: 'many' object has no attribute 'more'``. ``restore_more()`` gives
hypothesis-jsonschema (and only it) an adapter with the old calls on top of the new API; with a Hypothesis that
still has ``more()`` it does nothing.
"""

from __future__ import annotations

import types
from typing import Any

from hypothesis.internal.conjecture import utils as conjecture_utils


class _ManyWithMore:
    """The old ``more()``/``reject()`` protocol over the new context-manager-and-iterator ``many``."""

    def __init__(self, data: Any, **kwargs: Any) -> None:
        self._many = conjecture_utils.many(data, **kwargs)
        self._many.__enter__()
        self._elements = iter(self._many)

    def more(self) -> bool:
        try:
            next(self._elements)
        except StopIteration:
            self._many.__exit__(None, None, None)
            return False
        return True

    def reject(self, why: str | None = None) -> None:
        self._many.reject(why)


def restore_more() -> None:
    """Patch ``hypothesis_jsonschema._from_schema`` when the installed Hypothesis lacks ``many.more``."""
    import hypothesis_jsonschema._from_schema as from_schema_module

    if hasattr(conjecture_utils.many, "more"):
        return
    patched = types.SimpleNamespace(**vars(conjecture_utils))
    patched.many = _ManyWithMore
    from_schema_module.cu = patched  # type: ignore[attr-defined,assignment]
