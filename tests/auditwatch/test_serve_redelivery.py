"""serve's webhook against a real SQLite file and a real PostgreSQL database, with the write failing at each of
its steps: the apiserver's retry stores exactly what a run without the failure stores, once.

The fault is real at the database's edge: on PostgreSQL the server terminates the connection at the chosen
statement (or commit); on SQLite the driver reports the file locked there. A mixed batch drives stateful rules
(a threshold and a sequence), so a batch that left its events "seen" after a failed write would lose alerts.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from api.store import AlertStore
from api.tables import alerts_table, groups_table, quarantine_table, receipts_table, state_table
from auditwatch import server
from auditwatch.embedded import EmbeddedSink
from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.client import TestClient
from tests.support.events import event_list
from tests.support.poison import mixed_batch, rules_dir


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'alerts.db'}"
        return
    from tests.support.services import PG_URL, fresh_database, require

    require(PG_URL.split("@", 1)[1].split("/", 1)[0], "PostgreSQL")
    yield from fresh_database(PG_URL)


@pytest.fixture
def checkpoint_every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Detector state is checkpointed with every batch, so that its rows are a step of each write."""
    monkeypatch.setattr(server, "EmbeddedSink", functools.partial(EmbeddedSink, checkpoint_every_s=0))


def steps_of(statements: list[str]) -> list[int | str]:
    """Where to fail: before the transaction, at the first statement of each kind and at the last fold of an
    alert into its group (so after every state, receipt, alert, group and quarantine row), and at commit."""
    firsts = {kind: i for i, kind in reversed(list(enumerate(statements)))}
    last_fold = max(i for i, kind in enumerate(statements) if "alert_groups" in kind)
    return ["begin", *sorted({*firsts.values(), last_fold}), "commit"]


@dataclass
class Faults:
    """Fails one step of the webhook's write with a transient fault, while armed."""

    engine: sa.Engine
    admin: sa.Engine | None  # PostgreSQL: a connection of our own, to terminate the server's side of the store's
    armed: bool = False
    fail_at: int | str | None = None  # the n-th statement, or "begin" / "commit"
    statements: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "begin", self._begin)
        event.listen(self.engine, "commit", self._commit)

    def arm(self, fail_at: int | str | None) -> None:
        self.fail_at, self.statements, self.armed = fail_at, [], True

    def _statement(self, conn: sa.Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.armed:
            self.statements.append(" ".join(statement.split()[:4]))
            if self.fail_at == len(self.statements) - 1:
                self._fail(conn)

    def _begin(self, conn: sa.Connection) -> None:
        if self.armed and self.fail_at == "begin":
            self._fail(conn)

    def _commit(self, conn: sa.Connection) -> None:
        if self.armed and self.fail_at == "commit":
            self._fail(conn)

    def _fail(self, conn: sa.Connection) -> None:
        self.armed = False
        if self.admin is None:
            raise sqlite3.OperationalError("database is locked")
        pid = conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
        with self.admin.connect() as admin:
            assert admin.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar()


TABLES = (alerts_table, groups_table, receipts_table, quarantine_table, state_table)
VOLATILE = {"detected_at", "received_at", "updated_at"}  # when it was written
SERIAL = {"quarantine": "id"}  # numbered in order of insertion


def stored(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the store but write times and serial numbers, in a stable order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        for table in TABLES:
            columns = [c for c in table.c if c.name not in VOLATILE and c.name != SERIAL.get(table.name)]
            rows = conn.execute(sa.select(*columns)).all()
            out[table.name] = sorted(tuple(repr(v) for v in row) for row in rows)
    engine.dispose()
    return out


def reset(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(table.delete())
    engine.dispose()


def run_once(url: str, rules: Pipeline, admin: sa.Engine | None, fail_at: int | str | None) -> dict[str, Any]:
    pipeline = rules.fresh()
    client = TestClient(create_serve_app(Settings(db_url=url, record_receipts=True), pipeline=pipeline))
    body = event_list(mixed_batch())
    with client:
        store: AlertStore = client.app.state.store  # type: ignore[attr-defined]
        faults = Faults(store.engine, admin)
        faults.arm(fail_at)
        first = client.post("/audit/webhook", content=body)
        faults.armed = False
        if first.status_code != 200:
            retry = client.post("/audit/webhook", content=body)  # the apiserver's retry
            assert retry.status_code == 200, retry.text
        # and a redelivery after the 200 (a lost response): it changes nothing, but for the item that is not
        # an event, which is quarantined again with each delivery
        assert client.post("/audit/webhook", content=body).status_code == 200
        snapshot, seen = pipeline.snapshot(), list(pipeline._seen_order)
    return {"first": first.status_code, "statements": faults.statements, "rows": stored(url),  # after shutdown
            "snapshot": snapshot, "seen": seen}  # fmt: skip


@pytest.mark.usefixtures("checkpoint_every_batch")
def test_the_retry_of_a_write_that_failed_at_any_step_stores_exactly_the_batch(store_url: str, tmp_path: Path) -> None:
    rules = Pipeline(load_rules(["builtin", str(rules_dir(tmp_path))]))
    admin = None if store_url.startswith("sqlite") else sa.create_engine(store_url)
    try:
        clean = run_once(store_url, rules, admin, None)
        assert clean["first"] == 200
        assert len(clean["rows"]["alerts"]) >= 8 and len(clean["rows"]["quarantine"]) == 2
        assert {"'denied-burst'", "'grant-then-deploy'"} <= {row[1] for row in clean["rows"]["alerts"]}
        assert len(clean["rows"]["detector_state"]) == 1
        steps = steps_of(clean["statements"])
        assert any("detector_state" in clean["statements"][i] for i in steps if isinstance(i, int))
        for step in steps:
            reset(store_url)
            run = run_once(store_url, rules, admin, step)
            where = f"failing at {step!r} of {clean['statements']}"
            assert run["first"] in (503, 200), where  # 200: the fault hit the receipt pruning after the commit
            assert run["rows"] == clean["rows"], where
            assert run["snapshot"] == clean["snapshot"], where
            assert run["seen"] == clean["seen"], where
    finally:
        if admin is not None:
            admin.dispose()
