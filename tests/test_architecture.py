"""The data path stays readable: the detection core is pure, imports run one way, without cycles."""

from __future__ import annotations

import ast
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from tests.support.paths import PYTHON, ROOT

IO_MODULES = {
    "fastapi",
    "starlette",
    "sqlalchemy",
    "aiokafka",
    "confluent_kafka",
    "uvicorn",
    "anyio",
    "httpx",
    "alembic",
    "api",
    "ingest",
    "auditwatch",
}

# Layers, lowest first: a package may import itself and the packages listed for it, nothing else.
PACKAGES = ("detectors", "ingest", "api", "auditwatch")
MAY_IMPORT: dict[str, frozenset[str]] = {
    "detectors": frozenset({"detectors"}),
    "ingest": frozenset({"ingest", "detectors"}),
    "api": frozenset({"api", "detectors"}),
    "auditwatch": frozenset(PACKAGES),
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted((ROOT / "detectors").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_detection_core_does_no_io(path: Path) -> None:
    assert not imported_roots(path) & IO_MODULES


@pytest.mark.parametrize("path", sorted((ROOT / "ingest").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_ingest_needs_no_store_or_models(path: Path) -> None:
    assert not imported_roots(path) & {"sqlalchemy", "river", "api", "alembic"}


def test_importing_does_not_read_settings_or_connect() -> None:
    code = "import api.routes, api.store, ingest.webhook, auditwatch.server, auditwatch.cli, detectors.pipeline"
    out = subprocess.run([PYTHON, "-c", code], env={"PATH": "/usr/bin:/bin", "AUDITWATCH_PORT": "not-a-number"},
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr


# ---- the module import graph ---------------------------------------------------------------------------
#
# Every import statement counts, wherever it is: at the top, inside a function (a "lazy" import hides a
# cycle from Python, not from a reader) and under `if TYPE_CHECKING:` (a type that needs the other module
# is a dependency on it all the same). `from pkg import name` is an edge to `pkg.name` when that is a
# module of ours, else to `pkg`. Importing a submodule does not add edges to its parent packages.


def module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the packages (`pkg/__init__.py` is `pkg`)."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _owner(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module of ours that `name` (a dotted import target) loads: the longest known prefix."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _base_of(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` names (relative imports resolved against `module`)."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    anchor = package[: len(package) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def module_imports(module: str, path: Path, modules: Mapping[str, Path]) -> list[tuple[str, str, int]]:
    """(target module of ours, name imported from it or "", line) for every import in the file."""
    found: list[tuple[str, str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _owner(alias.name, modules)
                if target is not None:
                    found.append((target, "", node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = _base_of(module, path, node)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in modules:
                    found.append((submodule, "", node.lineno))
                    continue
                target = _owner(base, modules)
                if target is not None:
                    found.append((target, alias.name, node.lineno))
    return found


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    return {m: {t for t, _, _ in module_imports(m, p, modules) if t != m} for m, p in modules.items()}


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle (a closed path of modules) per strongly connected component that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
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
            if len(component) > 1 or node in graph.get(node, ()):
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(graph, set(c)) for c in sorted(components)]


def _cycle_in(graph: Mapping[str, Iterable[str]], component: set[str]) -> list[str]:
    """A closed path through the component, starting at its first module: [a, b, ..., a]."""
    start = min(component)
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:  # breadth first: the shortest way back to `start`
        node = queue.pop(0)
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                return [*paths[node], start]
            if nxt in component and nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start}")  # unreachable for a strongly connected component


def upward_imports(graph: Mapping[str, Iterable[str]]) -> list[str]:
    return [
        f"{source} imports {target}"
        for source, targets in sorted(graph.items())
        for target in sorted(targets)
        if target.split(".")[0] not in MAY_IMPORT[source.split(".")[0]]
    ]


def private_imports(modules: Mapping[str, Path]) -> list[str]:
    """`from other_module import _name`: another module's private name (dunders are not private)."""
    return [
        f"{modules[module].relative_to(ROOT)}:{line}: from {target} import {name}"
        for module in sorted(modules)
        for target, name, line in module_imports(module, modules[module], modules)
        if name.startswith("_") and not name.startswith("__") and target != module
    ]


OURS = module_files(ROOT, PACKAGES)


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph(OURS))
    assert not cycles, "import cycles:\n" + "\n".join("  " + " -> ".join(c) for c in cycles)


def test_imports_go_down_the_layers() -> None:
    upward = upward_imports(import_graph(OURS))
    assert not upward, "imports against the layers:\n" + "\n".join("  " + u for u in upward)


def test_no_module_imports_another_modules_private_names() -> None:
    """The product packages, and the tools beside them (simulation, bench), use each other's public names only."""
    found = private_imports({**OURS, **module_files(ROOT, ("simulation", "bench"))})
    assert not found, "imports of another module's private names:\n" + "\n".join("  " + f for f in found)


def test_tests_share_code_only_through_tests_support() -> None:
    """No test module imports another test module or a conftest: what tests share lives in tests/support."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] if node.module != "tests" else [f"tests.{a.name}" for a in node.names]
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {name}" for name in names
                      if name.startswith("tests.") and name.split(".")[1] != "support"]  # fmt: skip
    assert not found, "imports of test modules:\n" + "\n".join("  " + f for f in found)


def test_cycle_finder_on_a_synthetic_graph() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"x": {"x"}}) == [["x", "x"]]
    two = find_cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c", "a"}})
    assert two == [["a", "b", "a"], ["c", "d", "e", "c"]]


def test_checks_find_a_planted_cycle_upward_import_and_private_import(tmp_path: Path) -> None:
    """Imports hidden in a function or under TYPE_CHECKING, and relative ones, are found too."""
    (tmp_path / "detectors" / "sub").mkdir(parents=True)
    (tmp_path / "api").mkdir()
    files = {
        "detectors/__init__.py": "",
        "detectors/sub/__init__.py": "",
        "detectors/sub/a.py": "def f():\n    from detectors.sub import b\n",
        "detectors/sub/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import c\n",
        "detectors/sub/c.py": "import detectors.sub.a\nfrom api.store import _secret\n",
        "api/__init__.py": "",
        "api/store.py": "_secret = 1\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    modules = module_files(tmp_path, ("detectors", "api"))
    graph = import_graph(modules)
    assert find_cycles(graph) == [["detectors.sub.a", "detectors.sub.b", "detectors.sub.c", "detectors.sub.a"]]
    assert upward_imports(graph) == ["detectors.sub.c imports api.store"]
    found = [
        (target, name)
        for module, path in modules.items()
        for target, name, _ in module_imports(module, path, modules)
        if name.startswith("_")
    ]
    assert found == [("api.store", "_secret")]
