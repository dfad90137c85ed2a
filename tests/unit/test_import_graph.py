"""The import graph of beam_pipelines/, transforms/ and model/ (docs/ARCHITECTURE.md section 1), read from the
source with ``ast``: every ``import`` and ``from ... import`` statement, at module level or inside a function.

A module is one ``.py`` file; a package's ``__init__.py`` is the module named by the package. ``from a.b import c``
is an edge to ``a.b.c`` when that is a module of the tree, else to ``a.b``; ``import a.b.c`` an edge to the longest
prefix that is a module. Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``; those implicit edges
are not counted (a package's ``__init__`` importing its own submodules is no cycle).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("beam_pipelines", "transforms", "model")
MAX_LINES = 400
MAX_TOP_LEVEL_BEAM_MODULES = 4


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file of the three packages."""
    return {_module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def _imported_names(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every module name ``name``'s file imports, absolute (relative imports resolved), with its line number; for
    ``from X import a, b`` both ``X.a`` and ``X.b`` (resolved to ``X`` later when they are not modules)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield (f"{base}.{alias.name}" if alias.name != "*" else base), node.lineno


def _resolve(imported: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``imported`` that is a module of the tree, or None for an outside module."""
    parts = imported.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


@cache
def _imports() -> dict[str, list[tuple[str, int]]]:
    """Module -> every (absolute imported name, line) in it, outside modules included."""
    return {name: list(_imported_names(name, path)) for name, path in _modules().items()}


@cache
def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, imported in _imports().items():
        for target, _ in imported:
            resolved = _resolve(target, modules)
            if resolved is not None and resolved != name:
                graph[name].add(resolved)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _violations(package: str, forbidden: tuple[str, ...], allowed_in: tuple[str, ...] = ()) -> list[str]:
    """``module:line imports name`` for every import of a ``forbidden`` top-level package from ``package``."""
    found = []
    for name, imported in sorted(_imports().items()):
        if name.split(".")[0] != package or name in allowed_in:
            continue
        for target, line in imported:
            if target.split(".")[0] in forbidden:
                found.append(f"{name}:{line} imports {target}")
    return found


def test_the_graph_is_read():
    """The walk finds the tree's modules and their edges (a check of this test itself)."""
    modules, graph = _modules(), _graph()
    assert {"beam_pipelines.commands.cli", "transforms.recipes", "model.train"} <= set(modules)
    assert "beam_pipelines.dataset.fs" in graph["beam_pipelines.dataset.lock"]
    assert "transforms.recipes" in graph["beam_pipelines.stages.build"]  # from transforms.recipes import ...
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_transforms_imports_neither_beam_nor_the_other_layers():
    assert _violations("transforms", ("apache_beam", "beam_pipelines", "model")) == []


def test_model_never_imports_beam_pipelines():
    assert _violations("model", ("beam_pipelines",)) == []


def test_beam_pipelines_imports_model_only_in_the_cli():
    assert _violations("beam_pipelines", ("model",), allowed_in=("beam_pipelines.commands.cli",)) == []


def test_no_module_over_the_line_limit():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_beam_pipelines_keeps_few_top_level_modules():
    top = sorted(path.name for path in (ROOT / "beam_pipelines").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_BEAM_MODULES, top
