"""The data path stays readable: the detection core is pure, imports run one way."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT

IO_MODULES = {
    "fastapi",
    "starlette",
    "sqlalchemy",
    "aiokafka",
    "uvicorn",
    "anyio",
    "httpx",
    "alembic",
    "api",
    "ingest",
    "auditwatch",
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
