"""The import graph of the ``mmrl`` package has no cycle: every import counts, those inside
functions too (an import moved into a function hides a two-way tie, it does not remove it)."""
import ast
import os
from typing import Dict, List, Set

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def modules() -> Dict[str, str]:
    """Dotted module name -> file, for every module of mmrl/ (a package is its __init__.py)."""
    found = {}
    for folder, _, files in os.walk(os.path.join(REPO, "mmrl")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                found[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return found


def imported(module: str, path: str, known: Dict[str, str]) -> Set[str]:
    """The modules of ``known`` that ``module`` imports: ``from a import b`` is a.b when that is
    a module, else a; a name that is no module of ours resolves to its closest parent that is."""
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    targets: List[str] = []
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            targets += [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    out = set()
    for target in targets:
        while target not in known and "." in target:
            target = target.rsplit(".", 1)[0]
        if target in known and target != module:
            out.add(target)
    return out


def find_cycle(edges: Dict[str, Set[str]]) -> List[str]:
    """One cycle of the graph as [a, b, ..., a], or [] when there is none (depth-first search)."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_the_package_imports_without_a_cycle():
    known = modules()
    edges = {m: imported(m, p, known) for m, p in known.items()}
    assert "mmrl.results" in edges["mmrl.dassl.engine.trainer"]  # the graph sees what it should
    assert find_cycle(edges) == [], " -> ".join(find_cycle(edges))


def test_a_cycle_is_found():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []
