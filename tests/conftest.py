"""Fixtures shared by every test folder (helpers live in tests/support)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from api.store import AlertStore
from tests.support.cli import CliRun


@pytest.fixture(scope="session", autouse=True)
def kafka_left_as_found() -> Iterator[None]:
    """The session's topics are deleted from the shared Kafka at its end (tests/support/services.py)."""
    from tests.support.services import new_topics_deleted

    with new_topics_deleted():
        yield


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'alerts.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh database on the shared PostgreSQL (scripts/services.sh), dropped afterwards."""
    from tests.support.services import PG_URL, fresh_database, require

    require(PG_URL.split("@", 1)[1].split("/", 1)[0], "PostgreSQL")
    yield from fresh_database(PG_URL)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, db_url: str) -> Iterator[AlertStore]:
    """The same tests against a SQLite file and a real PostgreSQL database."""
    if request.param == "sqlite":
        url = db_url
        cleanup: Iterator[str] | None = None
    else:
        from tests.support.services import PG_URL, fresh_database, require

        require(PG_URL.split("@", 1)[1].split("/", 1)[0], "PostgreSQL")
        cleanup = fresh_database(PG_URL)
        url = next(cleanup)
    s = AlertStore(url)
    s.migrate()
    s.migrate()  # idempotent
    yield s
    s.close()
    if cleanup is not None:
        next(cleanup, None)


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many fuzz cases ran (tests/support/fuzz.py), so that CI's output shows the figure."""
    fuzz = sys.modules.get("tests.support.fuzz")
    if fuzz is None or not fuzz.TALLY.cases:
        return
    terminalreporter.section("fuzz cases")
    for line in fuzz.TALLY.lines():
        terminalreporter.write_line(line)
