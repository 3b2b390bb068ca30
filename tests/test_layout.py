"""The package's imports flow one way: no module reaches back, even lazily inside a function, to one that imports it.

A lazy import hides a loop from Python but not from a reader, who can no longer tell which module sits below.
"""

import ast
from pathlib import Path

import safekeel

ROOT = Path(safekeel.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: the safekeel modules it imports anywhere in its body}; `from .x import name` counts x.name when
    that is a module, else x."""
    paths = {_module(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for mod, path in paths.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                names = [f"{target}.{a.name}" for a in node.names]
                deps |= {n for n in names if n in paths} or {target}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[mod] = {d for d in deps if d in paths and d != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_sees_a_lazy_loop():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_reads_relative_and_lazy_imports():
    graph = import_graph()
    assert "safekeel.data.helpful" in graph["safekeel.data.catalogue"]  # `from .helpful import ...`
    assert "safekeel.sources" in graph["safekeel.data.bundled"]  # `from ..sources import ...`
    assert "safekeel.data.bundled" in graph["safekeel.data.splits"]  # `from . import bundled`, inside a function


def test_no_import_loops_in_the_package():
    assert cycles(import_graph()) == []
