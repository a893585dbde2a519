"""The product's modules import each other without cycles (``TYPE_CHECKING`` imports aside)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import ROOT


def _module(path: Path) -> str:
    parts = ("minqing", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.Module, modules: set[str]) -> set[str]:
    """``from package import module`` counts as importing the module, not the package."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            node.body = []  # only type checkers follow these
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    paths = [p for top in ("services", "shared") for p in (ROOT / top).rglob("*.py")]
    modules = {_module(p): p for p in paths if "migrations" not in p.parts}
    names = set(modules)
    return {
        name: {m for m in _runtime_imports(ast.parse(path.read_text()), names) if m in names}
        - {name}
        for name, path in modules.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_of_the_product_imports_itself_round_a_cycle() -> None:
    graph = _graph()
    assert "minqing.shared.service.runtime" in graph and "minqing.shared.web.http" in graph
    assert _cycle(graph) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def _imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_shared_never_imports_services() -> None:
    crossing = {
        str(path.relative_to(ROOT)): sorted(m for m in _imports_of(path) if ".services" in m)
        for path in (ROOT / "shared").rglob("*.py")
    }
    assert {path: found for path, found in crossing.items() if found} == {}


def test_a_service_imports_no_other_service() -> None:
    # Only the whole-system views (the command, the catalog) know every service.
    whole = {ROOT / "services" / "cli.py", ROOT / "services" / "catalog.py"}
    crossing = {}
    for service in (p for p in (ROOT / "services").iterdir() if (p / "app.py").is_file()):
        for path in service.rglob("*.py"):
            others = {
                m
                for m in _imports_of(path)
                if m.startswith("minqing.services.")
                and not m.startswith(f"minqing.services.{service.name}")
            }
            if others and path not in whole:
                crossing[str(path.relative_to(ROOT))] = sorted(others)
    assert crossing == {}
