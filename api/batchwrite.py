"""One batch into the alert store: one transaction, and, when an item cannot be stored, that item set aside.

A batch is alerts (each new one folded into its alert group and queued for the notification sinks that take
it, see api/outbox.py), event receipts, quarantine rows, detector state checkpoints and the alerts that rule
exceptions suppressed (their hits, see api/rule_exceptions.py), written in one transaction. When that fails,
`api.faults` says why:

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

The result names the alerts new to the store: its callers log, count and report only those, so a redelivered
batch (the apiserver's retry after a lost 200, Kafka's redelivery, a second replay) has its effects once. An
alert is new when this write inserted it (`INSERT ... ON CONFLICT DO NOTHING RETURNING id`). Only alerts not
found at the start are folded into groups and queued for notification; should another writer commit one of
them meanwhile (PostgreSQL; a SQLite writer holds the write lock throughout), the insert does not return it,
and the write starts again, so that the other writer's alert is neither folded nor queued twice. In the same
way, a suppressed alert is a hit of its exception when this write recorded it (same statement, keyed by the
exception and the alert's id): only those are counted in the exception's `hits` and reported as new.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.engine import Connection

from api.errors import StoreError
from api.faults import Fault, classify
from api.grouping import GroupFolder
from api.outbox import OutboxRoute, outbox_rows
from api.rows import alert_row, quarantine_row, state_text
from api.rule_exceptions import record_hits
from api.tables import (
    Receipt,
    StateCheckpoints,
    alerts_table,
    insert_ignore,
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

_TRIES = 3  # of a write whose alerts other writers keep storing meanwhile (PostgreSQL), before StoreError


@dataclass(frozen=True)
class WriteResult:
    """The ids of the alerts new to the store (this write inserted them), the events quarantined in place of
    alerts it refused, and how many suppressed alerts were hits new to the store."""

    new_ids: frozenset[str] = frozenset()
    refused: tuple[Rejected, ...] = ()
    new_hits: int = 0

    @property
    def new_alerts(self) -> int:
        return len(self.new_ids)


class _Raced(Exception):
    """Another writer committed some of the alerts this write had found missing: what was folded and queued
    for them must be undone."""


def store_error(error: BaseException) -> StoreError:
    return StoreError(f"database error: {describe_error(error)}")


@dataclass(frozen=True)
class _Batch:
    alerts: Sequence[Alert]
    rejected: Sequence[Rejected]
    states: StateCheckpoints
    receipts: Sequence[Receipt]
    routes: Sequence[OutboxRoute] = ()
    hits: Mapping[str, Sequence[str]] = field(default_factory=dict)


def write_batch(
    engine: Engine,
    alerts: Sequence[Alert],
    rejected: Sequence[Rejected],
    states: StateCheckpoints,
    receipts: Sequence[Receipt],
    routes: Sequence[OutboxRoute] = (),
    hits: Mapping[str, Sequence[str]] | None = None,
) -> WriteResult:
    """Write the batch (see the module docstring), queueing new alerts for the sinks of `routes` and recording
    `hits` (exception id -> the ids of the alerts it suppressed); StoreError when nothing of it could be stored."""
    batch = _Batch(alerts, rejected, states, receipts, routes, hits or {})
    now = datetime.now(UTC)
    for _ in range(_TRIES):
        try:
            with writing(engine).begin() as conn:
                return _write(conn, batch, now, isolate=False)
        except _Raced:
            continue  # rolled back: the next try finds the other writer's alerts stored
        except Exception as exc:
            if classify(exc) is Fault.TRANSIENT:
                raise store_error(exc) from exc
            break
    else:
        raise StoreError("database error: other writers kept storing alerts of the batch; retry it")
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
        new: set[str] = set()
        for alert in fresh:
            try:
                with conn.begin_nested():
                    new |= _insert_alerts(conn, [alert], now, batch.routes)
            except _Raced:
                continue  # another writer stored it (its savepoint is rolled back): not new here
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
    new_hits = record_hits(conn, batch.hits, now)  # last: it holds the exceptions' rows until the commit
    return WriteResult(frozenset(new), tuple(refused), new_hits)


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


def _insert_alerts(conn: Connection, alerts: Sequence[Alert], now: datetime, routes: Sequence[OutboxRoute]) -> set[str]:
    """Insert alerts not found in the store (in time order), each folded into its group first and queued for the
    sinks that take it; their ids. _Raced when another writer stored one of them meanwhile."""
    alerts = [storable_alert(a) for a in alerts]
    rows = [alert_row(a, now) for a in alerts]
    queued: list[dict[str, Any]] = []
    groups = GroupFolder(conn, alerts)
    for row, alert in zip(rows, alerts, strict=True):
        row["group_id"] = groups.fold(alert)
        queued.extend(outbox_rows(alert, row["group_id"], routes, now))
    groups.write()
    inserted: set[str] = set()
    if rows:
        inserted.update(conn.scalars(insert_ignore(conn, alerts_table).returning(alerts_table.c.id), rows))
        if len(inserted) < len(rows):
            raise _Raced
    for start in range(0, len(queued), 1000):
        conn.execute(insert_ignore(conn, outbox_table), queued[start : start + 1000])
    return inserted


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
