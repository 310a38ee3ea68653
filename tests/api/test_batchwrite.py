"""One batch write against a real SQLite file and a real PostgreSQL database: what cannot be stored is made
storable or set aside, and only a transient failure (or a broken store) refuses the batch."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import event, text

from api.errors import StoreError
from api.faults import Fault, classify
from api.queries import AlertFilter
from api.store import AlertStore
from api.tables import receipt_of, storable
from detectors.alerts import Alert, Severity, make_alert
from detectors.events import AuditEvent, Rejected
from tests.support.alerts import alerts
from tests.support.events import exec_event
from tests.support.poison import nul_event


def alert_of(raw: dict[str, Any], rule_id: str = "pod-exec-attach") -> Alert:
    event = AuditEvent(raw=raw, origin="webhook#items[0]")
    return make_alert(rule_id=rule_id, rule_name="Exec", severity=Severity.MEDIUM, mitre=("T1609",),
                      message=f"exec by {event.user_agent}", event=event)  # fmt: skip


def test_nul_characters_are_stored_as_replacement_characters(store: AlertStore) -> None:
    raw = nul_event()
    alert = alert_of(raw)
    rejected = Rejected("webhook#items[1]\x00", "stage 'x\x00' is not one of ...", {"bad\x00": "va\x00lue"})
    result = store.write([alert], [rejected], {"serve": (None, {"key\x00": "v\x00"})},
                         receipts=[receipt_of(AuditEvent(raw=raw))])  # fmt: skip
    assert result.new_alerts == 1 and result.refused == ()
    got = store.get_alert(alert.id)
    assert got is not None
    assert got["user_agent"] == "kubectl/v1.31.2\ufffd (linux/amd64)" and got["name"] == "web-7d9f8b6c5d\ufffd-x2x9k"
    assert got["audit_id"] == "nul\ufffd-audit-id" and "\x00" not in got["message"]
    deep = got["event"]["requestObject"]
    for level in reversed(range(30)):
        deep = deep[f"level{level}"]
    assert deep == {"note": "hidden\ufffdhere", "k\ufffdey": ["a\ufffd", {"b": "\ufffd"}]}
    (q,) = store.quarantined()
    assert q["origin"] == "webhook#items[1]\ufffd" and "\x00" not in q["reason"] + q["payload"]
    assert store.list_receipts(limit=5)[0][0]["audit_id"] == "nul\ufffd-audit-id"
    assert store.load_state("serve") == (None, {"key\x00": "v\x00"})  # JSON text: NUL is escaped, kept as is
    assert store.write([alert]).new_alerts == 0  # the same id: a redelivery stores nothing new


def test_storable_returns_the_same_object_when_there_is_nothing_toreplace() -> None:
    clean = {"a": ["b", ("c", 1)], "d": None}
    assert storable(clean) is clean
    assert storable({"a": ["b", ("c\x00", "\ud800")]}) == {"a": ["b", ("c\ufffd", "\ufffd")]}
    deep = {"spec": {"containers": [{"env": [{"name": "X\ud800", "value": {"k\x00": "v"}}]}]}}
    assert storable(deep) == {"spec": {"containers": [{"env": [{"name": "X\ufffd", "value": {"k\ufffd": "v"}}]}]}}
    looks_escaped = {"text": "a literal \\u0000, no NUL", 1: "a key orjson refuses", "t": ("x",)}
    assert storable(looks_escaped) is looks_escaped  # both fall back to the walk, which finds nothing to replace


@pytest.mark.parametrize("when", [datetime(1, 1, 1, 0, 30, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)])
def test_folding_at_the_ends_of_time_does_not_overflow(store: AlertStore, when: datetime) -> None:
    first, second = alerts(2)
    first, second = replace(first, event_time=when), replace(second, event_time=when - timedelta(seconds=1))
    assert store.write([first, second]).new_alerts == 2
    groups, _ = store.list_groups(AlertFilter(), limit=10)
    assert sorted(g["count"] for g in groups) in ([2], [1, 1])
    assert sum(g["count"] for g in groups) == 2


def test_an_alert_the_database_refuses_is_quarantined_and_the_rest_stored(store: AlertStore) -> None:
    good = alerts(4)
    unencodable = replace(alert_of(exec_event(), rule_id="odd-details"), details={"when": object()})
    too_big = replace(alert_of(nul_event(), rule_id="huge-window"), suppress_s=1e30)
    bad_reject = Rejected("webhook#items[9]", "not an Event", Unprintable())
    result = store.write([good[0], unencodable, *good[1:], too_big], [bad_reject])
    assert result.new_ids == {a.id for a in good} and store.count_alerts() == 4  # a refused alert is not new
    reasons = {r.reason.split(" could not")[0]: r for r in result.refused}
    assert set(reasons) == {"alert of rule odd-details", "alert of rule huge-window"}
    assert all(r.origin == "webhook#items[0]" for r in result.refused)
    assert "is not JSON serializable" in reasons["alert of rule odd-details"].reason
    quarantined = {q["reason"].split(" could not")[0]: q for q in store.quarantined()}
    assert set(quarantined) == {"alert of rule odd-details", "alert of rule huge-window",
                                "not an Event (payload not stored: RuntimeError: no repr)"}  # fmt: skip
    assert "exec" in quarantined["alert of rule odd-details"]["payload"]  # the (redacted) event, to inspect
    groups, _ = store.list_groups(AlertFilter(), limit=100)
    assert sum(g["count"] for g in groups) == 4  # a refused alert counts in no group
    again = store.write([good[0], unencodable, *good[1:], too_big])
    assert again.new_alerts == 0 and len(again.refused) == 2  # refused again on redelivery, never stored twice
    assert store.count_alerts() == 4


def test_an_alert_too_deep_to_store_is_quarantined_without_its_payload(store: AlertStore) -> None:
    deep: dict[str, Any] = {}
    for _ in range(5000):
        deep = {"d": deep}
    (good,) = alerts(1)
    too_deep = replace(alert_of(exec_event(), rule_id="deep"), event=deep)
    result = store.write([too_deep, good])
    assert result.new_alerts == 1 and [r.reason.split(":")[0] for r in result.refused] == [
        "alert of rule deep could not be stored"
    ]
    (q,) = store.quarantined()
    assert q["reason"].startswith("alert of rule deep could not be stored: RecursionError")


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@contextmanager
def failing(store: AlertStore, error: BaseException) -> Iterator[list[str]]:
    """Every statement raises `error` (a driver exception, as the driver would raise it)."""
    statements: list[str] = []

    def fail(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)
        raise error

    event.listen(store.engine, "before_cursor_execute", fail)
    try:
        yield statements
    finally:
        event.remove(store.engine, "before_cursor_execute", fail)


def transient_error(store: AlertStore) -> BaseException:
    if store.engine.dialect.name == "sqlite":
        return sqlite3.OperationalError("database is locked")
    return psycopg.errors.AdminShutdown("terminating connection due to administrator command")


def test_a_transient_failure_refuses_the_whole_batch_without_isolating_items(store: AlertStore) -> None:
    with failing(store, transient_error(store)) as statements, pytest.raises(StoreError, match="database error"):
        store.write(alerts(3), [Rejected("x", "y", None)], receipts=[("a", "b", "c")])
    assert len(statements) == 1  # tried once as a whole; no item-by-item retry
    assert store.count_alerts() == 0 and store.quarantined() == [] and store.count_receipts() == 0


def test_a_broken_store_refuses_the_batch_instead_of_quarantining_it(store: AlertStore) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE alerts RENAME TO alerts_away"))
    with pytest.raises(StoreError):
        store.write(alerts(3))
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE alerts_away RENAME TO alerts"))
    assert store.quarantined() == [] and store.count_alerts() == 0


def pg_error(sqlstate: str) -> BaseException:
    return psycopg.errors.lookup(sqlstate)("message")


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (sqlite3.OperationalError("database is locked"), Fault.TRANSIENT),  # raised by SQLite without a code
        (psycopg.OperationalError("connection failed: Connection refused"), Fault.TRANSIENT),
        (pg_error("57P01"), Fault.TRANSIENT),  # admin shutdown
        (pg_error("40001"), Fault.TRANSIENT),  # serialization failure
        (pg_error("40P01"), Fault.TRANSIENT),  # deadlock
        (pg_error("53100"), Fault.TRANSIENT),  # disk full
        (pg_error("55P03"), Fault.TRANSIENT),  # lock not available
        (pg_error("25006"), Fault.TRANSIENT),  # read-only transaction: a standby after failover
        (pg_error("22P05"), Fault.ITEM),  # NUL in jsonb
        (pg_error("22003"), Fault.ITEM),  # integer out of range
        (pg_error("23505"), Fault.ITEM),  # unique violation
        (pg_error("54001"), Fault.ITEM),  # stack depth limit (a jsonb nested too deep)
        (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), Fault.ITEM),
        (pg_error("42P01"), Fault.STORE),  # undefined table
        (pg_error("42501"), Fault.STORE),  # insufficient privilege
        (OverflowError("Python int too large to convert to SQLite INTEGER"), Fault.ITEM),
        (RecursionError("maximum recursion depth exceeded"), Fault.ITEM),
        (sa.exc.DisconnectionError("gone"), Fault.TRANSIENT),
        (sa.exc.TimeoutError("pool"), Fault.TRANSIENT),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_faults_are_classified_by_what_retrying_would_do(error: BaseException, fault: Fault) -> None:
    assert classify(error) is fault
    for base in (psycopg.Error, sqlite3.Error):
        if isinstance(error, base):
            wrapped = sa.exc.DBAPIError.instance("INSERT ...", {}, error, base)  # as SQLAlchemy raises it
            assert isinstance(wrapped, sa.exc.DBAPIError) and classify(wrapped) is fault


@pytest.mark.parametrize(
    ("statement", "fault"),
    [
        ("SELECT * FROM nowhere", Fault.STORE),  # SQLITE_ERROR: no such table
        ("INSERT INTO t VALUES (1), (1)", Fault.ITEM),  # SQLITE_CONSTRAINT
    ],
)
def test_sqlite_result_codes_are_classified(tmp_path: Any, statement: str, fault: Fault) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (i INTEGER PRIMARY KEY)"))
    with pytest.raises(sa.exc.DBAPIError) as raised, engine.begin() as conn:
        conn.execute(text(statement))
    assert classify(raised.value) is fault
    engine.dispose()
