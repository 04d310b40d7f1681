"""The library's import graph: no cycle between its packages, counting imports inside functions.

A "package" here is the folder a module lives in (``flarelib.train`` for ``flarelib/train/loop.py``,
``flarelib.data.phantom`` for ``flarelib/data/phantom/render.py``) or, for a module directly under
``flarelib/``, the module itself (``flarelib.config``). An import of any module of another package
is an edge; a cycle of edges means two packages cannot be understood, tested or replaced apart.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import flarelib

ROOT = Path(flarelib.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _package(module: str, modules: dict[str, Path]) -> str:
    """The package a module belongs to (see the module docstring)."""
    path = modules[module]
    if path.name == "__init__.py":
        return module
    parent = module.rsplit(".", 1)[0]
    return module if parent == "flarelib" else parent


def _imported(module: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """Every flarelib module ``module`` imports, at any depth of its code."""
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] + [f"{target}.{a.name}" for a in node.names]
        for name in names:
            # the longest flarelib module the name refers to (``flarelib.io.read`` or ``flarelib.io``)
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != "flarelib":
                yield name


def package_graph() -> dict[str, set[str]]:
    """Package -> the other packages it imports."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        src = _package(module, modules)
        for target in _imported(module, path, modules):
            dst = _package(target, modules)
            if dst != src:
                graph.setdefault(src, set()).add(dst)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None (iterative DFS)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(graph.get(start, ()))))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(child) == 1:
                return [*path[path.index(child) :], child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph.get(child, ())))))
    return None


def test_find_cycle_reports_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_no_import_cycle_between_packages():
    graph = package_graph()
    assert "flarelib.train" in graph and "flarelib.infer" in graph["flarelib.train"]  # the walk sees edges
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle or [])
