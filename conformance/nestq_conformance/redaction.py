"""Everything the kit prints goes through the spec's redaction, so a storage password never reaches a report."""

from __future__ import annotations

from nestq_spec.config import redact

__all__ = ["redact_text"]


def redact_text(text: str) -> str:
    """``text`` with URL passwords and secret query parameters hidden by :func:`nestq_spec.config.redact`."""
    return redact(text, as_repr=False)
