"""The installed package declares every package it imports, and ships what `minqing up` reads."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions

from minqing.shared.embedded.nats import NATS_CONFIG
from minqing.shared.persistence.migrations import TEMPLATE_DIR
from tests.support.paths import ROOT

PRODUCT = ("services", "shared")  # the folders pyproject.toml packages, under one name:
PACKAGE = "minqing"  # the one top-level name the distribution installs


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        _normalized(re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0])
        for spec in project["dependencies"]
    }


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (type checkers only read those)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _imported_top_levels() -> dict[str, set[str]]:
    """Each top-level module imported by the product's code, with the files importing it."""
    found: dict[str, set[str]] = {}
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_a_declared_dependency() -> None:
    declared = _declared_distributions()
    providers = packages_distributions()
    undeclared = {
        module: sorted(files)
        for module, files in _imported_top_levels().items()
        if module not in sys.stdlib_module_names
        and module != PACKAGE
        and not declared & {_normalized(dist) for dist in providers.get(module, [])}
    }
    assert undeclared == {}


def test_everything_is_imported_under_the_one_installed_name() -> None:
    # ``services.x`` and ``minqing.services.x`` would be two modules with two sets of
    # classes: code and tests import the product only as ``minqing``.
    found: dict[str, set[str]] = {}
    for top in (*PRODUCT, "tests", "bench"):
        for path in sorted((ROOT / top).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    if name.split(".")[0] in PRODUCT:
                        found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert found == {}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == [f"{PACKAGE}*"]
    for folder in PRODUCT:
        assert (ROOT / PACKAGE / folder).resolve() == ROOT / folder


def test_the_product_does_not_import_test_code() -> None:
    imported = _imported_top_levels()
    assert "tests" not in imported
    assert "pytest" not in imported


def test_what_minqing_up_reads_is_package_data() -> None:
    for needed in (NATS_CONFIG, TEMPLATE_DIR / "script.py.mako", TEMPLATE_DIR / "env.py"):
        assert needed.is_file()
        assert needed.resolve().is_relative_to(ROOT / "shared")


def _settings(conf: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in conf.splitlines())
    return [line for line in lines if line]


def test_the_packaged_nats_config_is_the_production_one_on_loopback() -> None:
    packaged = _settings(NATS_CONFIG.read_text())
    production = _settings((ROOT / "deploy" / "nats.conf").read_text())
    assert "host: 127.0.0.1" in packaged
    assert "host: 0.0.0.0" in production
    assert [s for s in packaged if not s.startswith("host:")] == [
        s for s in production if not s.startswith("host:")
    ]
    assert not any(s.split(":")[0] in ("http", "https", "monitor_port") for s in packaged)
