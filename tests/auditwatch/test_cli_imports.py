"""`auditwatch --help` is quick: building the parser imports none of the heavy modules (bench/cli.py times it)."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.cli import clean_env
from tests.support.paths import PYTHON, ROOT

# the scientific stack (river, numpy, scipy), the store, the web stack, Kafka, Sigma, settings
HEAVY = ("river", "numpy", "scipy", "pandas", "sqlalchemy", "alembic", "psycopg", "fastapi", "starlette", "uvicorn",
         "pydantic", "pydantic_settings", "aiokafka", "confluent_kafka", "sigma", "yaml", "httpx", "re2", "asyncio")  # fmt: skip


def imported_roots(code: str) -> set[str]:
    done = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    return set(done.stdout.split())


def test_building_the_parser_imports_no_heavy_module() -> None:
    roots = imported_roots(
        "import sys\nimport auditwatch.cli\nauditwatch.cli.build_parser()\n"
        "print(*sorted({name.split('.')[0] for name in sys.modules}))"
    )
    assert "auditwatch" in roots
    assert not roots & set(HEAVY), sorted(roots & set(HEAVY))


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["detect", "--help"], ["--version"]])
def test_help_and_version_import_no_heavy_module(argv: list[str]) -> None:
    done = subprocess.run([PYTHON, "-X", "importtime", "-m", "auditwatch.cli", *argv], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert done.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    assert "auditwatch" in imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
