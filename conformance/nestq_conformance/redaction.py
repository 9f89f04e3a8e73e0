"""Everything the kit prints goes through the spec's redaction, so a storage password never reaches a report."""

from __future__ import annotations

import ast

from nestq_spec.config import redact

__all__ = ["redact_text"]


def redact_text(text: str) -> str:
    """``text`` with URL passwords and secret query parameters hidden, by :func:`nestq_spec.config.redact`.

    ``redact`` works on a value's ``repr``; for a string that is its quoted, escaped form, so the result is read
    back into plain text. Where the redaction cut through an escape (and the literal no longer parses), the quoted
    form is returned: still redacted, only less pretty.
    """
    shown = redact(text)
    try:
        back = ast.literal_eval(shown)
    except (SyntaxError, ValueError):
        return shown
    return back if isinstance(back, str) else shown
