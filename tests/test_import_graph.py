"""The import graph of the package: no cycles, and the formulas import nothing above them.

Read from the source (``ast``), lazy imports inside functions included, so a circle cannot hide
behind a function-level import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import symbolic

PACKAGE = Path(symbolic.__file__).parent

# what ``symbolic.formulas`` may import: the base layer below it (and itself)
FORMULAS_MAY_IMPORT = (
    "symbolic.errors",
    "symbolic.inputs",
    "symbolic.symbols",
    "symbolic.terms",
    "symbolic.arch",
    "symbolic.families",
    "symbolic.units",
    "symbolic.parallel",
    "symbolic.numeric.values",
    "symbolic.formulas",
)


def module_name(path: Path) -> str:
    """``symbolic.a.b`` for ``symbolic/a/b.py`` (packages by their ``__init__``)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """The ``symbolic`` modules ``path`` imports (absolute names; ``from . import x`` resolved to the module x)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("symbolic")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("symbolic"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if MODULES.get(sub) else target)
    out.discard(name)
    return out


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def _resolve(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def test_no_import_cycles() -> None:
    graph = {m: {_resolve(t) for t in targets} - {m} for m, targets in GRAPH.items()}
    # a package's __init__ re-exporting its own modules is not a cycle
    for m in graph:
        graph[m] = {t for t in graph[m] if not (m.startswith(t + ".") and MODULES[t].name == "__init__.py")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t) :] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_formulas_import_nothing_above_them() -> None:
    bad = {
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        if m.startswith("symbolic.formulas")
        for t in targets
        if not any(t == allowed or t.startswith(allowed + ".") for allowed in FORMULAS_MAY_IMPORT)
    }
    assert not bad, sorted(bad)


def test_the_graph_is_read() -> None:
    # the checker sees real edges (a test that cannot fail proves nothing)
    assert "symbolic.terms" in GRAPH["symbolic.formulas.params"]
    assert "symbolic.numeric.values" in GRAPH["symbolic.formulas.weights"]
