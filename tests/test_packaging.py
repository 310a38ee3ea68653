"""The simulator and the benchmarks are tools of this repository: the product never ships or imports them."""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

from setuptools.config.pyprojecttoml import read_configuration

from tests.support.paths import ROOT

TOOLS = {"simulation", "bench"}
PRODUCT = ("ingest", "detectors", "api", "auditwatch")


def test_the_wheel_contains_neither_simulation_nor_bench() -> None:
    """The packages `pip install .` puts in the wheel, as setuptools resolves pyproject's find directive."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # setuptools calls its pyproject support "beta"
        config = read_configuration(ROOT / "pyproject.toml", expand=True)
    packages = set(config["tool"]["setuptools"]["packages"])
    assert {p.split(".")[0] for p in packages} == set(PRODUCT)
    assert not {p.split(".")[0] for p in packages} & TOOLS


def test_the_licences_of_what_ships_are_declared_and_present() -> None:
    """auditwatch's own licence, and those of the rule packs and the Swagger UI it ships, go into the wheel."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        project = read_configuration(ROOT / "pyproject.toml", expand=True)["project"]
    assert project["license"] == "Apache-2.0"
    files = set(project["license-files"])
    shipped = {str(p.relative_to(ROOT)) for p in ROOT.glob("detectors/packs/*/LICENSE")}
    assert len(shipped) == 2 and shipped | {"LICENSE", "auditwatch/static/swagger/LICENSE"} <= files
    assert all((ROOT / f).is_file() for f in files), files
    assert "LICENSE" in re.findall(r"^COPY\s+(.+)$", (ROOT / "Dockerfile").read_text(), re.M)[0].split()


def test_the_image_copies_neither_simulation_nor_bench() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    sources = {src for line in re.findall(r"^COPY\s+(.+)$", dockerfile, re.M) for src in line.split()[:-1]}
    assert sources and not sources & {".", "./", *TOOLS, *(f"{t}/" for t in TOOLS)}, sources
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert TOOLS <= set(ignored)


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_product_code_imports_no_tool() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for pkg in PRODUCT
        for path in sorted((ROOT / pkg).rglob("*.py"))
        if _imported_roots(path) & TOOLS
    ]
    assert offenders == []
