"""Bug: the driver's settings show a URL with its own redaction, which ends the password at the first '@'."""

import re

from nestq_memory import MemoryConfig

from nestq_spec import setting, settings

from ._base import broken_harness


@settings("memory")
class LeakyConfig(MemoryConfig):
    """The memory driver's settings plus a storage URL."""

    url: str = setting(default="memory://localhost/0", help="where the (pretend) storage is")


def _naive_repr(self: LeakyConfig) -> str:
    # The bug: "user:pa@ss@host" becomes "user:***@ss@host"; '/', '#' and '?' end the match early too.
    shown = re.sub(r"://([^:/@]*):[^@/#?]*@", r"://\1:***@", self.url)
    return f"LeakyConfig(url={shown!r}, concurrency={self.concurrency})"


LeakyConfig.__repr__ = _naive_repr  # type: ignore[method-assign]

harness = broken_harness("leaky_url")
harness.settings_class = LeakyConfig
