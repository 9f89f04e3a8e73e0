"""Bug: a URL setting marked ``url=True`` (its name and empty default do not show it) shown with a naive redaction.

Only the marker tells the suite it is a URL: CFG-008 must check it because of the marker.
"""

import re

from nestq_memory import MemoryConfig

from nestq_spec import setting, settings

from ._base import broken_harness


@settings("memory")
class LeakyMarkedConfig(MemoryConfig):
    """The memory driver's settings plus a storage address marked as a URL."""

    upstream: str = setting(default="", url=True, help="the (pretend) upstream storage, a URL; empty: none")


def _naive_repr(self: LeakyMarkedConfig) -> str:
    # The bug: the password ends at the first '@', '/', '#' or '?', so the rest of it shows.
    shown = re.sub(r"://([^:/@]*):[^@/#?]*@", r"://\1:***@", self.upstream)
    return f"LeakyMarkedConfig(upstream={shown!r}, concurrency={self.concurrency})"


LeakyMarkedConfig.__repr__ = _naive_repr  # type: ignore[method-assign]

harness = broken_harness("leaky_marked_url")
harness.settings_class = LeakyMarkedConfig
