"""One batch into the alert store: one transaction, and, when an item cannot be stored, that item set aside.

A batch is alerts (each new one folded into its alert group and queued for the notification sinks that take
it, see api/outbox.py), event receipts, quarantine rows and detector state checkpoints, written in one
transaction. When that fails, `api.faults` says why:

- transient (the database is unreachable, locked, restarting): StoreError; nothing was stored, and the
  caller retries the whole batch later (503 to the apiserver, backoff in the consumer);
- anything else: the batch is written again, in one transaction where each alert and each quarantine row
  has a savepoint of its own. An alert the database refuses is replaced by a quarantine row for its event
  that says why; a quarantine row it refuses is stored again without its payload. A failure that is not
  an item's (a missing table, no permission, the connection lost meanwhile) still fails the whole batch
  with StoreError: a broken store must be repaired, not have the batch thrown into quarantine.

What no database accepts is made storable before the first try: NUL characters and lone surrogates in
strings become U+FFFD (`api.tables.storable`), over-long values are bounded (`api.tables.fit`), and group
folding clamps a suppression window that would reach before year 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, insert, select
from sqlalchemy.engine import Connection

from api.errors import StoreError
from api.faults import Fault, classify
from api.grouping import GroupFolder
from api.outbox import OutboxRoute, outbox_rows
from api.rows import alert_row, quarantine_row, state_text
from api.tables import (
    Receipt,
    StateCheckpoints,
    alerts_table,
    outbox_table,
    quarantine_table,
    receipts_table,
    state_table,
    storable,
)
from api.transactions import writing
from detectors.alerts import Alert
from detectors.errors import describe_error
from detectors.events import Rejected


@dataclass(frozen=True)
class WriteResult:
    """How many alerts were new to the store, and the events quarantined in place of alerts it refused."""

    new_alerts: int
    refused: tuple[Rejected, ...] = ()


def store_error(error: BaseException) -> StoreError:
    return StoreError(f"database error: {describe_error(error)}")


@dataclass(frozen=True)
class _Batch:
    alerts: Sequence[Alert]
    rejected: Sequence[Rejected]
    states: StateCheckpoints
    receipts: Sequence[Receipt]
    routes: Sequence[OutboxRoute] = ()


def write_batch(
    engine: Engine,
    alerts: Sequence[Alert],
    rejected: Sequence[Rejected],
    states: StateCheckpoints,
    receipts: Sequence[Receipt],
    routes: Sequence[OutboxRoute] = (),
) -> WriteResult:
    """Write the batch (see the module docstring), queueing new alerts for the sinks of `routes`; StoreError
    when nothing of it could be stored."""
    batch = _Batch(alerts, rejected, states, receipts, routes)
    now = datetime.now(UTC)
    try:
        with writing(engine).begin() as conn:
            return _write(conn, batch, now, isolate=False)
    except Exception as exc:
        if classify(exc) is Fault.TRANSIENT:
            raise store_error(exc) from exc
    try:
        with writing(engine).begin() as conn:
            return _write(conn, batch, now, isolate=True)
    except Exception as exc:
        raise store_error(exc) from exc


def _write(conn: Connection, batch: _Batch, now: datetime, *, isolate: bool) -> WriteResult:
    unique = {a.id: a for a in batch.alerts}
    ids = list(unique)
    existing: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        existing.update(conn.scalars(select(alerts_table.c.id).where(alerts_table.c.id.in_(chunk))))
    fresh = sorted((a for i, a in unique.items() if i not in existing), key=lambda a: (a.event_time, a.id))
    refused: list[Rejected] = []
    if isolate:
        new = 0
        for alert in fresh:
            try:
                with conn.begin_nested():
                    _insert_alerts(conn, [alert], now, batch.routes)
                new += 1
            except Exception as exc:
                _raise_unless_item(exc)
                reason = f"alert of rule {alert.rule_id} could not be stored: {describe_error(exc)}"
                refused.append(Rejected(alert.origin, reason, dict(alert.event)))
    else:
        new = _insert_alerts(conn, fresh, now, batch.routes)
    keys = list(dict.fromkeys(tuple(storable(part) for part in receipt) for receipt in batch.receipts))
    for start in range(0, len(keys), 1000):
        conn.execute(
            insert_ignore(conn, receipts_table),
            [{"audit_id": a, "stage": s, "stage_timestamp": t, "received_at": now}
             for a, s, t in keys[start : start + 1000]],
        )  # fmt: skip
    _insert_quarantine(conn, [*batch.rejected, *refused], now, isolate=isolate)
    for scope, (position, state) in batch.states.items():
        _save_state(conn, scope, position, state, now)
    return WriteResult(new, tuple(refused))


def _raise_unless_item(exc: Exception) -> None:
    """Inside the isolating write: only an item's fault is set aside; any other ends the write."""
    if classify(exc) is not Fault.ITEM:
        raise exc


def storable_alert(alert: Alert) -> Alert:
    """The alert with NULs and lone surrogates replaced in every text (the very same alert when it has none)."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(alert):
        value = getattr(alert, f.name)
        clean = storable(value)
        if clean is not value:
            changes[f.name] = clean
    return dataclasses.replace(alert, **changes) if changes else alert


def _insert_alerts(conn: Connection, alerts: Sequence[Alert], now: datetime, routes: Sequence[OutboxRoute]) -> int:
    """Insert new alerts (in time order), each folded into its group first and queued for the sinks that take it
    (only new alerts count, so redelivery is harmless)."""
    alerts = [storable_alert(a) for a in alerts]
    rows = [alert_row(a, now) for a in alerts]
    queued: list[dict[str, Any]] = []
    groups = GroupFolder(conn, alerts)
    for row, alert in zip(rows, alerts, strict=True):
        row["group_id"] = groups.fold(alert)
        queued.extend(outbox_rows(alert, row["group_id"], routes, now))
    groups.write()
    if rows:
        conn.execute(insert_ignore(conn, alerts_table), rows)
    for start in range(0, len(queued), 1000):
        conn.execute(insert_ignore(conn, outbox_table), queued[start : start + 1000])
    return len(rows)


def _insert_quarantine(conn: Connection, rejected: Sequence[Rejected], now: datetime, *, isolate: bool) -> None:
    if not rejected:
        return
    if not isolate:
        conn.execute(insert(quarantine_table), [storable(quarantine_row(r, now)) for r in rejected])
        return
    for item in rejected:
        try:
            with conn.begin_nested():
                conn.execute(insert(quarantine_table), [storable(quarantine_row(item, now))])
        except Exception as exc:
            _raise_unless_item(exc)
            bare = Rejected(item.origin, f"{item.reason} (payload not stored: {describe_error(exc)})", None)
            with conn.begin_nested():
                conn.execute(insert(quarantine_table), [storable(quarantine_row(bare, now))])


def _save_state(conn: Connection, scope: str, position: int | None, state: dict[str, Any], now: datetime) -> None:
    row = {"scope": scope, "position": position, "state": state_text(state), "updated_at": now}
    t = state_table
    updated = conn.execute(
        t.update().where(t.c.scope == scope).values(position=position, state=row["state"], updated_at=now)
    )
    if updated.rowcount == 0:
        conn.execute(insert(t), [row])


def insert_ignore(conn: Connection, table: Table) -> Any:
    """INSERT that skips rows whose primary key is already there."""
    keys = [c.name for c in table.primary_key.columns]
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=keys)
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)
    return insert(table)
