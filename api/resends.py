"""Alertmanager's copy of each alert group, per sink: when to re-send it, and whether it fires or is resolved.

Alertmanager expects a client to re-send a firing alert before its `endsAt` passes, and to resolve it by
sending it with `endsAt` in the past, again for a while (it keeps no state across a crash). Once a group's
first alert has reached an Alertmanager sink, the sender keeps a row here and sends the group whenever the
row is due. The group resolves when its suppression window closes (the sender checks `alert_groups`), or
when triage resolves it (`resolve_groups`, to be called in triage's own transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.engine import Connection

from api.outbox import error_text, lease, unleased
from api.rows import utc
from api.tables import resends_table
from api.transactions import transaction

FIRING = "firing"
RESOLVED = "resolved"


@dataclass(frozen=True)
class Resend:
    """A group's row: its state, when it was resolved, and (when settling it) when it is due next."""

    group_id: str
    state: str
    resolved_at: datetime | None
    next_at: datetime | None = None


def resolve_groups(conn: Connection, group_ids: Sequence[str], now: datetime) -> int:
    """Resolve groups in Alertmanager (triage resolved them): every sink sends the resolution soon. A later
    alert of such a group makes it fire again once delivered."""
    r = resends_table
    done = conn.execute(
        update(r).where(r.c.group_id.in_(list(group_ids)), r.c.state == FIRING)
        .values(state=RESOLVED, resolved_at=now, next_at=now)
    )  # fmt: skip
    return int(done.rowcount or 0)


def _upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert the rows, or update the rows already there (the store runs on PostgreSQL or SQLite)."""
    from sqlalchemy.dialects import postgresql, sqlite

    stmt: Any = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(resends_table)
    changes = {name: stmt.excluded[name] for name in ("state", "next_at", "resolved_at", "last_error")}
    conn.execute(stmt.on_conflict_do_update(index_elements=["sink", "group_id"], set_=changes), rows)


class Resends:
    """The re-send schedule over the store's engine. Synchronous; async callers run it in a thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def firing(self, sink: str, group_ids: Iterable[str], next_at: datetime) -> None:
        """Groups whose alert a sink just took: they fire, and are due again at `next_at`."""
        rows = [
            {"sink": sink, "group_id": g, "state": FIRING, "next_at": next_at, "resolved_at": None, "last_error": None}
            for g in dict.fromkeys(group_ids)
        ]
        if rows:
            with transaction(self.engine) as conn:
                _upsert(conn, rows)

    def claim(self, sink: str, now: datetime, *, limit: int, lease_until: datetime) -> list[Resend]:
        """Lease up to `limit` groups of a sink that are due, earliest first."""
        r = resends_table
        query = (
            select(r.c.group_id, r.c.state, r.c.resolved_at)
            .where(r.c.next_at <= now, unleased(r, sink, now))
            .order_by(r.c.next_at, r.c.group_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with transaction(self.engine) as conn:
            rows = list(conn.execute(query))
            if rows:
                lease(conn, r, r.c.group_id, sink, [row.group_id for row in rows], lease_until)
        return [Resend(x.group_id, x.state, utc(x.resolved_at) if x.resolved_at else None) for x in rows]

    def settle(self, sink: str, sent: Sequence[Resend]) -> None:
        """Record what was sent: each group's state, and when it is due next."""
        r = resends_table
        with transaction(self.engine) as conn:
            for item in sent:
                conn.execute(
                    update(r).where(r.c.sink == sink, r.c.group_id == item.group_id).values(
                        state=item.state, resolved_at=item.resolved_at, next_at=item.next_at, leased_until=None,
                        last_error=None,
                    )
                )  # fmt: skip

    def retry(self, sink: str, group_ids: Sequence[str], at: datetime, error: str | None) -> None:
        """Not sent (the sink failed, or the sender stops): due again at `at`."""
        r = resends_table
        values: dict[str, Any] = {"next_at": at, "leased_until": None}
        if error is not None:
            values["last_error"] = error_text(error)
        with transaction(self.engine) as conn:
            conn.execute(update(r).where(r.c.sink == sink, r.c.group_id.in_(list(group_ids))).values(**values))

    def finish(self, sink: str, group_ids: Sequence[str]) -> None:
        """Groups whose resolution has been re-sent long enough: nothing more to send."""
        r = resends_table
        with transaction(self.engine) as conn:
            conn.execute(delete(r).where(r.c.sink == sink, r.c.group_id.in_(list(group_ids))))
