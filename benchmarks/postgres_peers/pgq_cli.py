"""``pgq`` (pgqueuer's own CLI), with one shim: pgqueuer 1.6's CLI passes its ``--log-level`` to
``setup_fancy_logger`` as a str under the typer version installed here, which fails (``'str' object has no attribute
'name'``); the shim turns it into pgqueuer's ``LogLevel`` first. Everything else is ``pgq`` unchanged."""

from __future__ import annotations

import sys

from pgqueuer.core import logconfig

_original = logconfig.setup_fancy_logger


def _setup(level: object) -> None:
    _original(logconfig.LogLevel(level) if isinstance(level, str) else level)  # type: ignore[arg-type]


logconfig.setup_fancy_logger = _setup

from pgqueuer.__main__ import main  # noqa: E402  (after the shim, which its import must see)

if __name__ == "__main__":
    sys.exit(main())
