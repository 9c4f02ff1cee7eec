"""The folders are layers: imports only point down, and no module imports itself in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

from app.infra.config import PROJECT_ROOT

APP = PROJECT_ROOT / "app"
# What each layer may import from the app (besides itself). Top-level modules (main, models, verify)
# may import anything.
ALLOWED = {
    "core": set(),
    "infra": {"core"},
    "ledger": {"core", "infra"},
    "domain": {"core", "infra", "ledger"},
    "api": {"core", "infra", "ledger", "domain"},
}


def _module(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The app modules a file imports: `from package import submodule` depends on the submodule (the
    package's __init__ is then only partly run), `from module import name` on the module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            found.update(subs)
            if len(subs) < len(node.names):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("app"))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in APP.rglob("*.py")}
    names = set(modules)
    return {name: {m for m in _imports(path, names) if m in names and m != name} for name, path in modules.items()}


def test_layers_import_only_downwards() -> None:
    wrong = []
    for name, imported in _graph().items():
        layer = name.split(".")[1] if name.count(".") >= 2 else None
        if layer not in ALLOWED:
            continue
        for target in imported:
            other = target.split(".")[1]
            if other != layer and other not in ALLOWED[layer]:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_no_import_circles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []
