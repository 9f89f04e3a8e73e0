"""Fill a rendered project's markers from the patch files in ``fill/``: only the marked members change.

A patch file holds classes named like the rendered ones; each member of a patch class (method or class-level
assignment) replaces the rendered class's member of the same name, or is appended when the rendered class has
none. The patch's top-level imports are added to the rendered module (except imports of that module itself).
Everything else in the rendered file stays as the template wrote it, which is the point: the storage-agnostic
part of the template must work unchanged once the markers are filled.
"""

from __future__ import annotations

import ast
from collections.abc import Collection
from pathlib import Path

FILL_DIR = Path(__file__).with_name("fill")


def _member_name(node: ast.stmt) -> str | None:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def _span(node: ast.stmt) -> tuple[int, int]:
    """0-based first line (decorators included) and end line (exclusive) of ``node``."""
    decorators = getattr(node, "decorator_list", [])
    first = min([node.lineno, *(d.lineno for d in decorators)])
    assert node.end_lineno is not None
    return first - 1, node.end_lineno


def apply_patch(target: Path, patch: Path, module: str, only: Collection[str] | None = None) -> list[str]:
    """Apply ``patch`` to the rendered file ``target`` (importable as ``module``); return the members replaced.

    ``only`` limits the members taken from the patch (by name), to fill one marker at a time.
    """
    source = target.read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    patch_source = patch.read_text(encoding="utf-8")
    patch_lines = patch_source.splitlines(keepends=True)
    patch_tree = ast.parse(patch_source)

    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    edits: list[tuple[int, int, list[str]]] = []
    done: list[str] = []
    for patch_class in (n for n in patch_tree.body if isinstance(n, ast.ClassDef)):
        rendered = classes.get(patch_class.name)
        if rendered is None:
            raise AssertionError(f"{target}: no class {patch_class.name} to patch (found {sorted(classes)})")
        members = {_member_name(n): n for n in rendered.body if _member_name(n)}
        for node in patch_class.body:
            name = _member_name(node)
            if name is None or (only is not None and name not in only):
                continue
            start, end = _span(node)
            text = patch_lines[start:end]
            if name in members:
                old_start, old_end = _span(members[name])
                edits.append((old_start, old_end, text))
            else:
                _, class_end = _span(rendered)
                edits.append((class_end, class_end, ["\n", *text]))
            done.append(f"{patch_class.name}.{name}")
    if only is not None and set(only) - {d.split(".", 1)[1] for d in done}:
        raise AssertionError(f"{patch}: members {sorted(set(only))} asked for, only {done} found")

    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    after_imports = _span(imports[-1])[1] if imports else 0
    new_imports = []
    for node in patch_tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module == "__future__" or node.module == module):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            start, end = _span(node)
            text = "".join(patch_lines[start:end])
            if text not in source:
                new_imports.append(text)
    edits.append((after_imports, after_imports, new_imports))

    for start, end, text in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        lines[start:end] = text
    result = "".join(lines)
    ast.parse(result)  # a patch that breaks the file should fail here, naming the file, not at import time
    target.write_text(result, encoding="utf-8")
    return done


def fill(project: Path, package: str) -> list[str]:
    """Fill the storage primitives of a project rendered with technology ``sqlite`` (leases, polling, a path).

    Only the numbered markers change (connect, push, claim, ack, retry, dead-letter, give back, extend leases),
    and the harness's declared capabilities and probes; return the members changed.
    """
    src = project / "src" / package
    return [
        *apply_patch(src / "connection.py", FILL_DIR / "connection.py", f"{package}.connection"),
        *apply_patch(src / "worker.py", FILL_DIR / "worker.py", f"{package}.worker"),
        *apply_patch(src / "harness.py", FILL_DIR / "harness.py", f"{package}.harness"),
    ]
