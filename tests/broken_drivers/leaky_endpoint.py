"""Bug: an endpoint URL setting (empty by default, as SQS's ``endpoint_url``) shown with a naive redaction.

Its default holds no ``://``, so only its name tells the suite it is a URL: CFG-008 must still check it.
"""

import re

from nestq_memory import MemoryConfig

from nestq_spec import setting, settings

from ._base import broken_harness


@settings("memory")
class LeakyEndpointConfig(MemoryConfig):
    """The memory driver's settings plus an optional endpoint URL."""

    endpoint_url: str = setting(default="", help="the (pretend) storage's endpoint; empty: the default one")


def _naive_repr(self: LeakyEndpointConfig) -> str:
    # The bug: the password ends at the first '@', '/', '#' or '?', so the rest of it shows.
    shown = re.sub(r"://([^:/@]*):[^@/#?]*@", r"://\1:***@", self.endpoint_url)
    return f"LeakyEndpointConfig(endpoint_url={shown!r}, concurrency={self.concurrency})"


LeakyEndpointConfig.__repr__ = _naive_repr  # type: ignore[method-assign]

harness = broken_harness("leaky_endpoint")
harness.settings_class = LeakyEndpointConfig
