"""The notification outbox: one row per (alert, sink), queued with the alert and settled by the sender.

Rows are written in the alert's own transaction (api/batchwrite.py), for the alerts new to the store and
the sinks whose filters accept them, so an alert is stored if and only if its notifications are queued,
and a redelivered batch queues nothing twice (key: alert id and sink).

A sender claims due rows: it leases them (`leased_until`) so that no other sender takes them meanwhile
(on PostgreSQL, concurrent claims skip each other's rows with `FOR UPDATE SKIP LOCKED`), delivers them, then
settles each one: delivered, due again later, failed, or dropped. Only a crash between delivering and
settling sends a notification twice: the lease runs out and the row is claimed again.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Column, Engine, Table, and_, func, or_, select, update
from sqlalchemy.engine import Connection

from api.errors import CursorError
from api.rows import iso, utc
from api.tables import alerts_table, groups_table, outbox_table, storable
from api.transactions import transaction
from detectors.alerts import Alert

MAX_ERROR_CHARS = 500  # of a delivery error kept in `last_error`


@dataclass(frozen=True)
class OutboxRoute:
    """A sink as the batch writer sees it: its public name, and whether it takes an alert."""

    sink: str
    accepts: Callable[[Alert], bool]


@dataclass(frozen=True)
class Claimed:
    """A row leased to this sender: deliver it, then settle it."""

    alert_id: str
    group_id: str | None
    attempts: int
    created_at: datetime


def outbox_rows(
    alert: Alert, group_id: str | None, routes: Sequence[OutboxRoute], now: datetime
) -> list[dict[str, Any]]:
    """The rows that queue a new alert for every sink that takes it."""
    return [
        {"alert_id": alert.id, "sink": route.sink, "group_id": group_id, "status": "pending", "attempts": 0,
         "created_at": now, "next_attempt_at": now}
        for route in routes
        if route.accepts(alert)
    ]  # fmt: skip


def error_text(error: str) -> str:
    text: str = storable(error[:MAX_ERROR_CHARS])
    return text


def unleased(table: Table, sink: str, now: datetime) -> Any:
    """The WHERE clause of a sink's rows that no sender holds (no lease, or one that ran out)."""
    c = table.c
    return and_(c.sink == sink, or_(c.leased_until.is_(None), c.leased_until < now))


def lease(
    conn: Connection, table: Table, id_column: Column[Any], sink: str, ids: Sequence[str], until: datetime
) -> None:
    """Lease rows of a sink to this sender until `until`."""
    conn.execute(update(table).where(table.c.sink == sink, id_column.in_(ids)).values(leased_until=until))


class Outbox:
    """The outbox over the store's engine. Methods are synchronous; async callers run them in a thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim(self, sink: str, now: datetime, *, limit: int, lease_until: datetime) -> list[Claimed]:
        """Lease up to `limit` due rows of a sink, oldest due first."""
        o = outbox_table
        query = (
            select(o.c.alert_id, o.c.group_id, o.c.attempts, o.c.created_at)
            .where(o.c.status == "pending", o.c.next_attempt_at <= now, unleased(o, sink, now))
            .order_by(o.c.next_attempt_at, o.c.created_at, o.c.alert_id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer process and no row locks
        )
        with transaction(self.engine) as conn:
            rows = list(conn.execute(query))
            if rows:
                lease(conn, o, o.c.alert_id, sink, [r.alert_id for r in rows], lease_until)
        return [Claimed(r.alert_id, r.group_id, r.attempts, utc(r.created_at)) for r in rows]

    def _settle(self, sink: str, ids: Iterable[str], **values: Any) -> None:
        chosen = list(ids)
        if not chosen:
            return
        o = outbox_table
        with transaction(self.engine) as conn:
            conn.execute(
                update(o)
                .where(o.c.sink == sink, o.c.alert_id.in_(chosen), o.c.status == "pending")
                .values(leased_until=None, **values)
            )

    def delivered(self, sink: str, ids: Iterable[str], now: datetime) -> None:
        o = outbox_table
        self._settle(sink, ids, status="delivered", delivered_at=now, attempts=o.c.attempts + 1, last_error=None)

    def retry(self, sink: str, ids: Iterable[str], at: datetime, error: str) -> None:
        """Tried and failed for a reason that may pass: due again at `at`."""
        o = outbox_table
        self._settle(sink, ids, next_attempt_at=at, attempts=o.c.attempts + 1, last_error=error_text(error))

    def release(self, sink: str, ids: Iterable[str], at: datetime) -> None:
        """Claimed but not tried (the sink failed on an earlier row, or the sender stops): due again at `at`."""
        self._settle(sink, ids, next_attempt_at=at)

    def fail(self, sink: str, ids: Iterable[str], error: str, *, tried: bool = True) -> None:
        o = outbox_table
        attempts = o.c.attempts + 1 if tried else o.c.attempts
        self._settle(sink, ids, status="failed", attempts=attempts, last_error=error_text(error))

    def drop(self, sink: str, ids: Iterable[str], reason: str) -> None:
        self._settle(sink, ids, status="dropped", last_error=error_text(reason))

    def expedite(self, sink: str, now: datetime) -> int:
        """The sink answers again: its pending rows waiting for a retry are due now."""
        o = outbox_table
        with transaction(self.engine) as conn:
            done = conn.execute(
                update(o).where(o.c.sink == sink, o.c.status == "pending", o.c.next_attempt_at > now)
                .values(next_attempt_at=now)
            )  # fmt: skip
        return int(done.rowcount or 0)

    def expire(self, sink: str, created_before: datetime, now: datetime, reason: str) -> int:
        """Fail the pending rows queued before `created_before` (not those a sender is delivering)."""
        o = outbox_table
        with transaction(self.engine) as conn:
            done = conn.execute(
                update(o)
                .where(o.c.status == "pending", o.c.created_at < created_before, unleased(o, sink, now))
                .values(status="failed", last_error=error_text(reason))
            )
        return int(done.rowcount or 0)

    def bound(self, sink: str, max_pending: int, now: datetime, reason: str) -> int:
        """Drop the oldest pending rows of a sink beyond `max_pending` (not those a sender is delivering)."""
        o = outbox_table
        with transaction(self.engine) as conn:
            pending = int(conn.scalar(select(func.count()).where(o.c.sink == sink, o.c.status == "pending")) or 0)
            excess = pending - max_pending
            if excess <= 0:
                return 0
            oldest = list(
                conn.scalars(
                    select(o.c.alert_id).where(o.c.status == "pending", unleased(o, sink, now))
                    .order_by(o.c.created_at, o.c.alert_id).limit(excess).with_for_update(skip_locked=True)
                )
            )  # fmt: skip
            for start in range(0, len(oldest), 500):
                conn.execute(
                    update(o).where(o.c.sink == sink, o.c.alert_id.in_(oldest[start : start + 500]))
                    .values(status="dropped", last_error=error_text(reason))
                )  # fmt: skip
        return len(oldest)

    def depths(self) -> dict[str, int]:
        """Pending rows per sink (those of sinks no longer configured too)."""
        o = outbox_table
        query = select(o.c.sink, func.count()).where(o.c.status == "pending").group_by(o.c.sink)
        with transaction(self.engine, writes=False) as conn:
            return {sink: int(n) for sink, n in conn.execute(query)}

    def alerts(self, ids: Sequence[str]) -> dict[str, Any]:
        """The stored alerts of claimed rows, by id (rows of `alerts`)."""
        with transaction(self.engine, writes=False) as conn:
            return {r.id: r for r in conn.execute(select(alerts_table).where(alerts_table.c.id.in_(ids)))}

    def groups(self, ids: Sequence[str]) -> dict[str, Any]:
        """Alert groups by id (rows of `alert_groups`)."""
        with transaction(self.engine, writes=False) as conn:
            return {r.id: r for r in conn.execute(select(groups_table).where(groups_table.c.id.in_(ids)))}

    def deliveries_of(self, alert_id: str) -> list[dict[str, Any]]:
        o = outbox_table
        with transaction(self.engine, writes=False) as conn:
            rows = conn.execute(select(o).where(o.c.alert_id == alert_id).order_by(o.c.sink))
            return [delivery_to_dict(r) for r in rows]

    def list_deliveries(
        self, *, status: str | None, sink: str | None, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Deliveries, newest queued first; a page and the next page's cursor."""
        o = outbox_table
        conds: list[Any] = []
        if status is not None:
            conds.append(o.c.status == status)
        if sink is not None:
            conds.append(o.c.sink == sink)
        if cursor:
            at, alert_id, sink_name = decode_delivery_cursor(cursor)
            conds.append(
                or_(
                    o.c.created_at < at,
                    and_(o.c.created_at == at, o.c.alert_id < alert_id),
                    and_(o.c.created_at == at, o.c.alert_id == alert_id, o.c.sink < sink_name),
                )
            )
        query = select(o).where(and_(*conds)) if conds else select(o)
        query = query.order_by(o.c.created_at.desc(), o.c.alert_id.desc(), o.c.sink.desc()).limit(limit + 1)
        with transaction(self.engine, writes=False) as conn:
            rows = list(conn.execute(query))
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_delivery_cursor(last.created_at, last.alert_id, last.sink)
        return [delivery_to_dict(r) for r in rows[:limit]], next_cursor


def delivery_to_dict(row: Any) -> dict[str, Any]:
    return {
        "alert_id": row.alert_id, "sink": row.sink, "status": row.status, "attempts": row.attempts,
        "last_error": row.last_error, "created_at": iso(row.created_at),
        "next_attempt_at": iso(row.next_attempt_at) if row.status == "pending" else None,
        "delivered_at": iso(row.delivered_at) if row.delivered_at is not None else None,
    }  # fmt: skip


def encode_delivery_cursor(created_at: datetime, alert_id: str, sink: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([iso(created_at), alert_id, sink])).decode().rstrip("=")


def decode_delivery_cursor(cursor: str) -> tuple[datetime, str, str]:
    try:
        at, alert_id, sink = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(at, str) and isinstance(alert_id, str) and isinstance(sink, str)):
            raise TypeError("not a delivery cursor")
        return utc(datetime.fromisoformat(at)), alert_id, sink
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise CursorError("invalid cursor") from None
