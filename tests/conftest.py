from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SCENARIO = DATA / "scenario.jsonl"
PYTHON = sys.executable


def scenario_events() -> list[dict[str, Any]]:
    """Realistic events as the apiserver writes them: controller/kubelet traffic plus three attacks."""
    return [orjson.loads(line) for line in SCENARIO.read_bytes().splitlines() if line.strip()]


def find_event(predicate: Any) -> dict[str, Any]:
    for event in scenario_events():
        if predicate(event):
            return copy.deepcopy(event)
    raise LookupError("no such event in the scenario")


def exec_event() -> dict[str, Any]:
    return find_event(lambda e: e.get("objectRef", {}).get("subresource") == "exec" and e["stage"] == "ResponseStarted")


def lease_event() -> dict[str, Any]:
    return find_event(lambda e: e.get("objectRef", {}).get("resource") == "leases" and e["stage"] == "ResponseComplete")


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'alerts.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh database on the shared PostgreSQL (scripts/services.sh), dropped afterwards."""
    from tests.services import PG_URL, fresh_database, require

    require(PG_URL.split("@", 1)[1].split("/", 1)[0], "PostgreSQL")
    yield from fresh_database(PG_URL)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a subprocess under test: no AUDITWATCH_* settings leak in from the shell or CI."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITWATCH_")}
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., CliRun]]:
    """`auditwatch.cli.main(argv)` in this process, without AUDITWATCH_* settings; undoes its GC tuning after."""
    import gc
    import os

    from auditwatch.cli import main

    for name in [n for n in os.environ if n.startswith("AUDITWATCH_")]:
        monkeypatch.delenv(name)
    threshold = gc.get_threshold()

    def run(*argv: str) -> CliRun:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # as the interpreter exits on it: a message goes to stderr with status 1
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    yield run
    gc.unfreeze()
    gc.set_threshold(*threshold)
