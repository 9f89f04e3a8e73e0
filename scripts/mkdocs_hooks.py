"""MkDocs hook: links from docs/ to files outside it (``../README.md``, ``../tests/example_app/``) name the file.

On GitHub those links open the file in the repository; the built site holds only docs/, so a relative link would be
a broken link (and ``mkdocs build --strict`` fails on it). The hook turns each into the link's text followed by the
file's path in the repository, set as code, so the reader still knows where to look.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]+)\]\((?P<target>[^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~)")


def _outside(page_path: str, target: str) -> str | None:
    """The repository path ``target`` points to when it leaves docs/, else ``None``."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
        return None
    path = target.split("#", 1)[0]
    if not path:
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(page_path), path))
    if not joined.startswith("../"):
        return None
    return joined[3:] + ("/" if path.endswith("/") and not joined.endswith("/") else "")


def rewrite(markdown: str, page_path: str) -> str:
    """``markdown`` of the page at ``page_path`` (relative to docs/) with its outside links rewritten."""
    out: list[str] = []
    fenced = False
    for line in markdown.split("\n"):
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
        if not fenced:

            def replace(match: re.Match[str]) -> str:
                repo_path = _outside(page_path, match.group("target"))
                if repo_path is None:
                    return match.group(0)
                text = match.group("text")
                shown = f"`{repo_path}`"
                return shown if text.strip("`") == repo_path.rstrip("/") or text == shown else f"{text} ({shown})"

            line = _LINK.sub(replace, line)
        out.append(line)
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: rewrite the page's links that leave docs/."""
    return rewrite(markdown, page.file.src_uri)
