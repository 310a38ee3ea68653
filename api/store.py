"""The alert store: SQLAlchemy Core over SQLite (default) or PostgreSQL; schema by Alembic migrations.

Writes are idempotent: an alert's id is deterministic, and inserting it again changes nothing, so a
redelivered batch or a second replay of the same file never duplicates an alert.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, and_, create_engine, event, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from api.batchwrite import WriteResult, store_error, write_batch
from api.errors import StoreURLError
from api.outbox import OutboxRoute
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
from api.readiness import schema_problem
from api.resends import resolve_groups
from api.rows import (
    group_to_dict,
    quarantined_to_dict,
    receipt_to_dict,
    row_to_dict,
    utc,
)
from api.rule_exceptions import (
    NewException,
    active_exceptions,
    create_exception,
    delete_exception,
    get_exception,
    list_exceptions,
)
from api.tables import (
    Receipt,
    StateCheckpoints,
    alerts_table,
    groups_table,
    quarantine_table,
    receipts_table,
    state_table,
)
from api.transactions import begin_statement, writing
from api.triage import (
    ALERT,
    GROUP,
    GroupClosed,
    TriageChange,
    TriageHooks,
    history_of,
    notes_of,
    triage_alert,
    triage_group,
)
from detectors.alerts import Alert
from detectors.events import Rejected
from detectors.exceptions import RuleException

_MIGRATION_LOCK = 0x61756469_74776174  # "auditwat": the advisory lock that serialises migrations


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # Transactions are begun by SQLAlchemy, not pysqlite (which begins them late and commits on the release
        # of a SAVEPOINT), so that savepoints nest inside a real transaction.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")  # a 200 means the alerts reached the disk
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin_statement(conn))  # IMMEDIATE when it will write (api/transactions.py)


def _url_problem(url: str, exc: Exception) -> str:
    """What is wrong with a database URL, and the URLs that work; never the URL itself (it may hold a password)."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    works = "use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB"
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if isinstance(exc, NoSuchModuleError):
        return f"unknown database URL scheme {scheme!r}: {works}"
    if isinstance(exc, ImportError):
        return f"no driver installed for database URL scheme {scheme!r} ({exc}): {works}"
    if isinstance(exc, ArgumentError) and not scheme:
        return f"not a database URL: {works}"
    return f"cannot use database URL: {exc}"


# libpq's and psycopg's words for a connection option it does not know or a value it refuses, said before any
# server is asked (`connection is bad: invalid sslmode value: "bogus"`): the URL is wrong, not the database down
_REFUSED_OPTION = re.compile(
    r"invalid connection option|bad value for|invalid [\w\" ]*value|invalid port number|invalid integer value"
    r"|could not parse network address|missing \"=\" after"
)


def _option_problem(exc: BaseException) -> str | None:
    """What the driver refused in the URL's options when connecting failed for that, else None."""
    orig = getattr(exc, "orig", None)
    if orig is None or getattr(orig, "sqlstate", None):  # an answer of the server
        return None
    first = str(orig).partition("\n")[0]
    return first.removeprefix("connection is bad: ") if _REFUSED_OPTION.search(first) else None


def _resolve_in_alertmanager(conn: Connection, closed: GroupClosed) -> None:
    """A group that triage closes is resolved in Alertmanager too, in the same transaction (no sink: no rows)."""
    resolve_groups(conn, [closed.group_id], closed.at)


class AlertStore:
    """Owns one SQLAlchemy engine. Methods are synchronous; async callers run them in a thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.triage_hooks = TriageHooks()
        self.triage_hooks.group_closed.append(_resolve_in_alertmanager)
        try:
            if url.startswith("sqlite"):
                self.engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
                _configure_sqlite(self.engine)
            else:
                self.engine = create_engine(url, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreURLError(_url_problem(url, exc)) from None

    @contextmanager
    def _tx(self, *, writes: bool = False) -> Iterator[Connection]:
        try:
            with (writing(self.engine) if writes else self.engine).begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise store_error(exc) from exc

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        try:
            with self.engine.connect():  # the first connection: says whether the URL's options are usable
                pass
        except SQLAlchemyError as exc:
            problem = _option_problem(exc)
            if problem is not None:
                raise StoreURLError(f"bad database URL: {problem}") from None
            raise store_error(exc) from exc
        with self._tx(writes=True) as conn:
            if conn.dialect.name == "postgresql":
                # detect and api processes start together: one migrates, the others wait, then see it done.
                # Bounded: a stuck migration fails the start with an error instead of hanging it.
                conn.execute(text("SET LOCAL lock_timeout = '60s'"))
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def schema_problem(self) -> str | None:
        """Why this version cannot use the schema, and the remedy; None if it can (api/readiness.py)."""
        return schema_problem(self.engine)

    def write(
        self,
        alerts: Sequence[Alert],
        rejected: Sequence[Rejected] = (),
        states: StateCheckpoints | None = None,
        *,
        receipts: Sequence[Receipt] = (),
        routes: Sequence[OutboxRoute] = (),
        hits: Mapping[str, Sequence[str]] | None = None,
    ) -> WriteResult:
        """Store alerts, rejected items, detector states, event receipts and rule exception hits (exception id ->
        the ids of the alerts it suppressed) in one transaction (an alert the database refuses is quarantined
        instead: see api/batchwrite.py), and queue each new alert for the notification sinks of `routes` that
        take it; StoreError when nothing could be stored. Receipts and hits already stored are left as they are
        (their first `received_at` stays; a hit is counted once)."""
        return write_batch(self.engine, alerts, rejected, states or {}, receipts, routes, hits)

    def list_groups(
        self, flt: AlertFilter, *, limit: int, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Alert groups, most recently active first; `since`/`until` apply to their last alert."""
        g = groups_table
        conds = conditions(g, g.c.last_seen, flt, cursor)
        query = select(g)
        if conds:
            query = query.where(and_(*conds))
        query = query.order_by(g.c.last_seen.desc(), g.c.id.desc()).limit(limit + 1)
        with self._tx() as conn:
            rows = list(conn.execute(query))
        items = [group_to_dict(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor(last.last_seen, last.id)
        return items, next_cursor

    def load_state(self, scope: str) -> tuple[int | None, dict[str, Any]] | None:
        """The last checkpoint of a scope: (position, state), or None."""
        with self._tx() as conn:
            row = conn.execute(select(state_table).where(state_table.c.scope == scope)).first()
        if row is None:
            return None
        return row.position, orjson.loads(row.state)

    def list_alerts(
        self, flt: AlertFilter, *, limit: int, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first (event time, then id); returns a page and the cursor of the next one."""
        t = alerts_table
        query = select(*(c for c in t.c if c.name != "event"))
        conds = conditions(t, t.c.event_time, flt, cursor)
        if conds:
            query = query.where(and_(*conds))
        query = query.order_by(t.c.event_time.desc(), t.c.id.desc()).limit(limit + 1)
        with self._tx() as conn:
            rows = list(conn.execute(query))
        items = [row_to_dict(r, with_event=False) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]._mapping
            next_cursor = encode_cursor(last["event_time"], last["id"])
        return items, next_cursor

    def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        """One alert with its event, and its notes and its group's."""
        if has_nul(alert_id):  # no id holds one (ids are digests), and PostgreSQL refuses it in a query
            return None
        with self._tx() as conn:
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
        with self._tx() as conn:
            row = conn.execute(select(groups_table).where(groups_table.c.id == group_id)).first()
            if row is None:
                return None
            found = group_to_dict(row)
            found["notes"] = notes_of(conn, [(GROUP, group_id)])
        return found

    def triage_alert(
        self, alert_id: str, change: TriageChange, new_exception: NewException | None = None
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Apply a triage change to an alert, and create an exception with it (in the same transaction) if
        given: the alert as it is now (None if there is no such alert) and the exception created.
        ExceptionError or AlertNotFound when the exception cannot be made (nothing is changed then)."""
        if has_nul(alert_id):  # as in get_alert
            return None, None
        now = datetime.now(UTC)
        created = None
        with self._tx(writes=True) as conn:  # it may read the alert's group before its first write
            if not triage_alert(conn, alert_id, change, now, self.triage_hooks):
                return None, None
            if new_exception is not None:
                created = create_exception(conn, new_exception, now)
        if created is not None:
            self._exceptions_changed()
        return self.get_alert(alert_id), created

    def triage_group(self, group_id: str, change: TriageChange) -> tuple[dict[str, Any] | None, int]:
        """Apply a triage change to a group and all its alerts: the group as it is now (None if there is no
        such group) and how many of its alerts changed."""
        if has_nul(group_id):  # as in get_alert
            return None, 0
        with self._tx() as conn:
            changed = triage_group(conn, group_id, change, datetime.now(UTC), self.triage_hooks)
        if changed is None:
            return None, 0
        return self.get_group(group_id), changed

    def triage_history(self, target: str, target_id: str, *, limit: int) -> list[dict[str, Any]]:
        """The triage history of an alert or group (target "alert" or "group"), oldest first."""
        with self._tx() as conn:
            return history_of(conn, target, target_id, limit)

    def create_exception(self, new: NewException) -> dict[str, Any]:
        """ExceptionError when its conditions do not compile, AlertNotFound when `from_alert` is not there."""
        with self._tx() as conn:
            created = create_exception(conn, new, datetime.now(UTC))
        self._exceptions_changed()
        return created

    def list_exceptions(self, rule_id: str | None = None) -> list[dict[str, Any]]:
        with self._tx() as conn:
            return list_exceptions(conn, datetime.now(UTC), rule_id)

    def get_exception(self, exception_id: str) -> dict[str, Any] | None:
        with self._tx() as conn:
            return get_exception(conn, exception_id, datetime.now(UTC))

    def delete_exception(self, exception_id: str) -> bool:
        with self._tx() as conn:
            deleted = delete_exception(conn, exception_id)
        if deleted:
            self._exceptions_changed()
        return deleted

    def active_exceptions(self) -> list[RuleException]:
        with self._tx() as conn:
            return active_exceptions(conn, datetime.now(UTC))

    def _exceptions_changed(self) -> None:
        for hook in self.triage_hooks.exceptions_changed:
            hook()

    def count_alerts(self) -> int:
        with self._tx() as conn:
            return int(conn.scalar(select(func.count()).select_from(alerts_table)) or 0)

    def list_receipts(
        self, *, audit_id: str | None = None, limit: int, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Receipts in key order (auditID, stage, stageTimestamp ascending); a page and the next page's cursor."""
        r = receipts_table
        conds = receipt_conditions(audit_id, cursor)
        query = select(r).where(and_(*conds)) if conds else select(r)
        query = query.order_by(r.c.audit_id, r.c.stage, r.c.stage_timestamp).limit(limit + 1)
        with self._tx() as conn:
            rows = list(conn.execute(query))
        items = [receipt_to_dict(x) for x in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_receipt_cursor((last.audit_id, last.stage, last.stage_timestamp))
        return items, next_cursor

    def count_receipts(self, *, audit_id: str | None = None) -> int:
        query = select(func.count()).select_from(receipts_table)
        if audit_id is not None:
            query = query.where(receipts_table.c.audit_id == audit_id)
        with self._tx() as conn:
            return int(conn.scalar(query) or 0)

    def prune_receipts(self, before: datetime, *, max_rows: int | None = None) -> int:
        """Delete receipts received before `before`, oldest first; with `max_rows`, about that many at most
        (a whole last batch goes, since a batch's receipts share their `received_at`). Returns the count."""
        r = receipts_table
        cutoff = r.c.received_at < utc(before)
        with self._tx(writes=True) as conn:
            if max_rows is not None:
                nth = conn.scalar(
                    select(r.c.received_at).where(cutoff).order_by(r.c.received_at).offset(max_rows - 1).limit(1)
                )
                if nth is not None:
                    cutoff = r.c.received_at <= nth
            return int(conn.execute(r.delete().where(cutoff)).rowcount or 0)

    def quarantined(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(select(quarantine_table).order_by(quarantine_table.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]

    def list_quarantined(self, *, limit: int, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Quarantined items (redacted when stored), newest first; a page and the next page's cursor."""
        q = quarantine_table
        query = select(q)
        if cursor:
            query = query.where(q.c.id < decode_quarantine_cursor(cursor))
        with self._tx() as conn:
            rows = list(conn.execute(query.order_by(q.c.id.desc()).limit(limit + 1)))
        next_cursor = encode_quarantine_cursor(rows[limit - 1].id) if len(rows) > limit else None
        return [quarantined_to_dict(r) for r in rows[:limit]], next_cursor

    def close(self) -> None:
        self.engine.dispose()
