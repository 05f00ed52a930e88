"""Find every environment variable a package reads directly, by parsing its source with `ast`.

Why parse instead of grep: a grep for `os.environ` misses `from os import getenv as g`, and
matches comments, docstrings and writes (`os.environ["X"] = ...`, which the sandbox does to
configure a child process). Only reads count: they are settings an operator must know about.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

# Methods of the environ mapping that read a variable (pop and setdefault read it too).
_READING_METHODS = frozenset({"get", "pop", "setdefault", "__getitem__", "__contains__"})


@dataclass(frozen=True)
class EnvRead:
    """One direct read; `name` is None when the key is not a string literal."""

    name: str | None
    path: str
    line: int

    def where(self) -> str:
        return f"{self.path}:{self.line}"


class _ReadFinder(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.os_names: set[str] = set()  # `import os`, `import os as system`
        self.environ_names: set[str] = set()  # `from os import environ [as e]`
        self.getenv_names: set[str] = set()  # `from os import getenv [as g]`
        self.reads: list[EnvRead] = []

    # -- aliases ---------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "os":
                self.os_names.add(alias.asname or "os")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "os":
            for alias in node.names:
                if alias.name == "environ":
                    self.environ_names.add(alias.asname or "environ")
                elif alias.name == "getenv":
                    self.getenv_names.add(alias.asname or "getenv")

    # -- reads -----------------------------------------------------------------------------

    def _is_environ(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.environ_names
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "environ"
            and isinstance(node.value, ast.Name)
            and node.value.id in self.os_names
        )

    def _is_getenv(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.getenv_names
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "getenv"
            and isinstance(node.value, ast.Name)
            and node.value.id in self.os_names
        )

    def _record(self, key: ast.expr | None, node: ast.AST) -> None:
        name = key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None
        self.reads.append(EnvRead(name, self.path, getattr(node, "lineno", 0)))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        key = node.args[0] if node.args else None
        if self._is_getenv(func) or (
            isinstance(func, ast.Attribute)
            and func.attr in _READING_METHODS
            and self._is_environ(func.value)
        ):
            self._record(key, node)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, ast.Load) and self._is_environ(node.value):
            self._record(node.slice, node)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn) and self._is_environ(right):
                self._record(node.left, node)
        self.generic_visit(node)


def reads_in_source(source: str, path: str = "<string>") -> list[EnvRead]:
    """Direct environment reads in one module's source, in order of appearance."""
    tree = ast.parse(source, filename=path)
    finder = _ReadFinder(path)
    # Aliases first, so a read above its module's import line (inside a function) is still seen.
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            finder.visit(node)
    finder.visit(tree)
    return sorted(finder.reads, key=lambda read: read.line)


def reads_in_package(root: Path) -> list[EnvRead]:
    """Direct environment reads in every .py file under `root`."""
    found: list[EnvRead] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).as_posix()
        found += reads_in_source(path.read_text(encoding="utf-8"), relative)
    return found
