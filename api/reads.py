"""The alert store's reads: pages of alerts, alert groups, receipts and quarantined items, one alert or group with
its notes, counts, and a scope's state checkpoint. The WHERE clauses and cursors they use are in api/queries.py;
`AlertStore` (api/store.py) adds the engine, migrations and every write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import Engine, and_, func, select

from api.queries import (
    AlertFilter,
    conditions,
    decode_quarantine_cursor,
    encode_cursor,
    encode_quarantine_cursor,
    encode_receipt_cursor,
    has_nul,
    receipt_conditions,
)
from api.rows import group_to_dict, quarantined_to_dict, receipt_to_dict, row_to_dict
from api.tables import alerts_table, groups_table, quarantine_table, receipts_table, state_table
from api.transactions import transaction
from api.triage import ALERT, GROUP, notes_of

Page = tuple[list[dict[str, Any]], str | None]  # a page of items, and the next page's cursor (None: the last page)


def _page(rows: list[Any], limit: int, item: Callable[[Any], dict[str, Any]], cursor: Callable[[Any], str]) -> Page:
    """A page of `rows`, queried with `limit + 1`: the first `limit` as items, and when there were more, the cursor
    after the last of them."""
    return [item(r) for r in rows[:limit]], cursor(rows[limit - 1]) if len(rows) > limit else None


class StoreReads:
    """Reads over `engine` (set by `AlertStore`), each in a transaction of its own; StoreError when the database
    fails. Methods are synchronous; async callers run them in a thread."""

    engine: Engine

    def list_alerts(self, flt: AlertFilter, *, limit: int, cursor: str | None = None) -> Page:
        """Newest first (event time, then id); returns a page and the cursor of the next one."""
        t = alerts_table
        query = select(*(c for c in t.c if c.name != "event"))
        conds = conditions(t, t.c.event_time, flt, cursor)
        if conds:
            query = query.where(and_(*conds))
        query = query.order_by(t.c.event_time.desc(), t.c.id.desc()).limit(limit + 1)
        with transaction(self.engine, writes=False) as conn:
            rows = list(conn.execute(query))
        return _page(
            rows, limit, lambda r: row_to_dict(r, with_event=False), lambda r: encode_cursor(r.event_time, r.id)
        )

    def list_groups(self, flt: AlertFilter, *, limit: int, cursor: str | None = None) -> Page:
        """Alert groups, most recently active first; `since`/`until` apply to their last alert."""
        g = groups_table
        conds = conditions(g, g.c.last_seen, flt, cursor)
        query = select(g)
        if conds:
            query = query.where(and_(*conds))
        query = query.order_by(g.c.last_seen.desc(), g.c.id.desc()).limit(limit + 1)
        with transaction(self.engine, writes=False) as conn:
            rows = list(conn.execute(query))
        return _page(rows, limit, group_to_dict, lambda r: encode_cursor(r.last_seen, r.id))

    def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        """One alert with its event, and its notes and its group's."""
        if has_nul(alert_id):  # no id holds one (ids are digests), and PostgreSQL refuses it in a query
            return None
        with transaction(self.engine, writes=False) as conn:
            row = conn.execute(select(alerts_table).where(alerts_table.c.id == alert_id)).first()
            if row is None:
                return None
            found = row_to_dict(row, with_event=True)
            targets = [(ALERT, alert_id)] + ([(GROUP, row.group_id)] if row.group_id else [])
            found["notes"] = notes_of(conn, targets)
        return found

    def get_group(self, group_id: str) -> dict[str, Any] | None:
        """One alert group with its notes."""
        if has_nul(group_id):  # as in get_alert
            return None
        with transaction(self.engine, writes=False) as conn:
            row = conn.execute(select(groups_table).where(groups_table.c.id == group_id)).first()
            if row is None:
                return None
            found = group_to_dict(row)
            found["notes"] = notes_of(conn, [(GROUP, group_id)])
        return found

    def count_alerts(self) -> int:
        with transaction(self.engine, writes=False) as conn:
            return int(conn.scalar(select(func.count()).select_from(alerts_table)) or 0)

    def load_state(self, scope: str) -> tuple[int | None, dict[str, Any]] | None:
        """The last checkpoint of a scope: (position, state), or None."""
        with transaction(self.engine, writes=False) as conn:
            row = conn.execute(select(state_table).where(state_table.c.scope == scope)).first()
        if row is None:
            return None
        return row.position, orjson.loads(row.state)

    def list_receipts(self, *, audit_id: str | None = None, limit: int, cursor: str | None = None) -> Page:
        """Receipts in key order (auditID, stage, stageTimestamp ascending); a page and the next page's cursor."""
        r = receipts_table
        conds = receipt_conditions(audit_id, cursor)
        query = select(r).where(and_(*conds)) if conds else select(r)
        query = query.order_by(r.c.audit_id, r.c.stage, r.c.stage_timestamp).limit(limit + 1)
        with transaction(self.engine, writes=False) as conn:
            rows = list(conn.execute(query))
        return _page(
            rows, limit, receipt_to_dict, lambda r: encode_receipt_cursor((r.audit_id, r.stage, r.stage_timestamp))
        )

    def count_receipts(self, *, audit_id: str | None = None) -> int:
        query = select(func.count()).select_from(receipts_table)
        if audit_id is not None:
            query = query.where(receipts_table.c.audit_id == audit_id)
        with transaction(self.engine, writes=False) as conn:
            return int(conn.scalar(query) or 0)

    def quarantined(self, limit: int = 100) -> list[dict[str, Any]]:
        with transaction(self.engine, writes=False) as conn:
            rows = conn.execute(select(quarantine_table).order_by(quarantine_table.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]

    def list_quarantined(self, *, limit: int, cursor: str | None = None) -> Page:
        """Quarantined items (redacted when stored), newest first; a page and the next page's cursor."""
        q = quarantine_table
        query = select(q)
        if cursor:
            query = query.where(q.c.id < decode_quarantine_cursor(cursor))
        with transaction(self.engine, writes=False) as conn:
            rows = list(conn.execute(query.order_by(q.c.id.desc()).limit(limit + 1)))
        return _page(rows, limit, quarantined_to_dict, lambda r: encode_quarantine_cursor(r.id))
