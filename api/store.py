"""The alert store: SQLAlchemy Core over SQLite (default) or PostgreSQL; schema by Alembic migrations.

Writes are idempotent: an alert's id is deterministic, and inserting it again changes nothing, so a
redelivered batch or a second replay of the same file never duplicates an alert.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from detectors.alerts import Alert, Severity
from detectors.events import AuditEvent, Rejected
from detectors.redact import redact_payload

log = logging.getLogger("auditwatch.store")

_MIGRATION_LOCK = 0x61756469_74776174  # "auditwat": the advisory lock that serialises migrations
MAX_QUARANTINE_PAYLOAD = 1 << 20  # bytes kept of one rejected item; the rest is marked truncated
_JSON = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData()

alerts_table = Table(
    "alerts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("rule_id", String(200), nullable=False),
    Column("rule_name", Text, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("severity_rank", SmallInteger, nullable=False),
    Column("mitre", _JSON, nullable=False),
    Column("message", Text, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("detected_at", DateTime(timezone=True), nullable=False),
    Column("audit_id", String(512), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("user_name", Text, nullable=False),
    Column("groups", _JSON, nullable=False),
    Column("impersonated_user", Text),
    Column("source_ips", _JSON, nullable=False),
    Column("user_agent", Text, nullable=False),
    Column("verb", String(64), nullable=False),
    Column("resource", String(255), nullable=False),
    Column("subresource", String(255), nullable=False),
    Column("namespace", String(255), nullable=False),
    Column("name", Text, nullable=False),
    Column("origin", Text, nullable=False),
    Column("event", _JSON, nullable=False),
    Column("details", _JSON, nullable=False, server_default="{}"),
    Column("group_id", String(64)),
    Index("ix_alerts_time_id", "event_time", "id"),
    Index("ix_alerts_rule", "rule_id"),
    Index("ix_alerts_user", "user_name"),
    Index("ix_alerts_namespace", "namespace"),
)

quarantine_table = Table(
    "quarantine",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("origin", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("payload_truncated", Boolean, nullable=False),
)


# Alerts of one rule with the same group key, each within the rule's suppression window of the previous one.
groups_table = Table(
    "alert_groups",
    metadata,
    Column("id", String(64), primary_key=True),  # deterministic: rule id, group key, first alert id
    Column("rule_id", String(200), nullable=False),
    Column("rule_name", Text, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("severity_rank", SmallInteger, nullable=False),
    Column("group_key", Text, nullable=False),
    Column("user_name", Text, nullable=False),
    Column("namespace", String(255), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("count", Integer, nullable=False),
    Column("suppress_s", Integer, nullable=False),
    Column("last_alert_id", String(64), nullable=False),
    Column("last_message", Text, nullable=False),
    Index("ix_groups_lookup", "rule_id", "group_key", "last_seen"),
    Index("ix_groups_last_seen_id", "last_seen", "id"),
)

# Detector state, checkpointed with the input position it reflects (a Kafka offset; none for the webhook).
state_table = Table(
    "detector_state",
    metadata,
    Column("scope", String(512), primary_key=True),  # "serve", or "kafka:<group>:<topic>:<partition>"
    Column("position", BigInteger),  # the next offset to read, when the input has one
    Column("state", Text, nullable=False),  # JSON of Pipeline.snapshot()
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


# Opt-in receipts: one row per received event, so an operator (or a test) can prove that every event the
# apiserver sent was received and went through detection. Keyed like the pipeline's dedupe identity.
RECEIPT_LIMITS = (255, 32, 64)  # audit_id, stage, stage_timestamp column lengths
receipts_table = Table(
    "event_receipts",
    metadata,
    Column("audit_id", String(RECEIPT_LIMITS[0]), primary_key=True),
    Column("stage", String(RECEIPT_LIMITS[1]), primary_key=True),
    Column("stage_timestamp", String(RECEIPT_LIMITS[2]), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Index("ix_receipts_received_at", "received_at"),
)

Receipt = tuple[str, str, str]  # (auditID, stage, stageTimestamp)


def _bounded(value: str, limit: int) -> str:
    """`value` if it fits its column, else a prefix and a digest of the whole (still unique, never an error:
    a client-chosen auditID or an RFC 3339 time with a long fraction must not make a batch unstorable)."""
    if len(value) <= limit:
        return value
    return value[: limit - 33] + "~" + hashlib.sha256(value.encode()).hexdigest()[:32]


def receipt_of(event: AuditEvent) -> Receipt:
    """An event's receipt key: auditID, stage and `stageTimestamp` exactly as received ("" if missing)."""
    ts = event.raw.get("stageTimestamp")
    audit_id, stage, stamp = RECEIPT_LIMITS
    return (
        _bounded(event.audit_id, audit_id),
        _bounded(event.stage, stage),
        _bounded(ts if isinstance(ts, str) else "", stamp),
    )


class StoreError(Exception):
    """The alert store could not do its job (database down, bad URL); callers answer 503 or retry."""


class CursorError(StoreError):
    """A pagination cursor that this store did not produce."""


@dataclass(frozen=True, slots=True)
class AlertFilter:
    min_severity: Severity | None = None
    rule: str | None = None
    user: str | None = None
    namespace: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return _utc(value).isoformat().replace("+00:00", "Z")


def encode_cursor(event_time: datetime, alert_id: str) -> str:
    raw = orjson.dumps([_iso(event_time), alert_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(cursor: str) -> Any:
    return orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        time_text, alert_id = _unb64(cursor)
        return _utc(datetime.fromisoformat(time_text)), str(alert_id)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise CursorError("invalid cursor") from None


def encode_receipt_cursor(key: Receipt) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_receipt_cursor(cursor: str) -> Receipt:
    try:
        key = _unb64(cursor)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise CursorError("invalid cursor") from None
    if not (isinstance(key, list) and len(key) == 3 and all(isinstance(part, str) for part in key)):
        raise CursorError("invalid cursor")
    return key[0], key[1], key[2]


def _fit(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """Bound every value of a length-limited column: audit events carry client-chosen auditIDs, verbs and
    names, and one over-long value must not make a batch unstorable (on PostgreSQL the insert fails, and the
    webhook would answer 503 to that batch forever, or `detect` retry it forever)."""
    for column in table.c:
        limit = getattr(column.type, "length", None)
        value = row.get(column.name)
        if limit and isinstance(value, str) and len(value) > limit:
            row[column.name] = _bounded(value, limit)
    return row


def _alert_row(alert: Alert, detected_at: datetime) -> dict[str, Any]:
    return _fit(
        alerts_table,
        {
            "id": alert.id,
            "rule_id": alert.rule_id,
            "rule_name": alert.rule_name,
            "severity": alert.severity.label,
            "severity_rank": int(alert.severity),
            "mitre": list(alert.mitre),
            "message": alert.message,
            "event_time": alert.event_time,
            "detected_at": detected_at,
            "audit_id": alert.audit_id,
            "stage": alert.stage,
            "user_name": alert.user,
            "groups": list(alert.groups),
            "impersonated_user": alert.impersonated_user,
            "source_ips": list(alert.source_ips),
            "user_agent": alert.user_agent,
            "verb": alert.verb,
            "resource": alert.resource,
            "subresource": alert.subresource,
            "namespace": alert.namespace,
            "name": alert.name,
            "origin": alert.origin,
            "event": dict(alert.event),
            "details": dict(alert.details),
        },
    )


def row_to_dict(row: Any, *, with_event: bool) -> dict[str, Any]:
    m = row._mapping
    out = {
        "id": m["id"],
        "rule": m["rule_name"],
        "rule_id": m["rule_id"],
        "severity": m["severity"],
        "mitre": list(m["mitre"] or []),
        "message": m["message"],
        "time": _iso(m["event_time"]),
        "detected_at": _iso(m["detected_at"]),
        "audit_id": m["audit_id"],
        "stage": m["stage"],
        "user": m["user_name"],
        "groups": list(m["groups"] or []),
        "impersonated_user": m["impersonated_user"],
        "source_ips": list(m["source_ips"] or []),
        "user_agent": m["user_agent"],
        "verb": m["verb"],
        "resource": m["resource"],
        "subresource": m["subresource"],
        "namespace": m["namespace"],
        "name": m["name"],
        "origin": m["origin"],
        "details": dict(m["details"] or {}),
        "group_id": m["group_id"],
    }
    if with_event:
        out["event"] = m["event"]
    return out


def _conditions(table: Table, time_column: Any, flt: AlertFilter, cursor: str | None) -> list[Any]:
    """WHERE clauses for alerts and alert groups alike: the filters, and the cursor's position (time, id)."""
    c = table.c
    conds: list[Any] = []
    if flt.min_severity is not None:
        conds.append(c.severity_rank >= int(flt.min_severity))
    if flt.rule:
        conds.append(or_(c.rule_id == flt.rule, c.rule_name == flt.rule))
    if flt.user:
        conds.append(c.user_name == flt.user)
    if flt.namespace:
        conds.append(c.namespace == flt.namespace)
    if flt.since:
        conds.append(time_column >= _utc(flt.since))
    if flt.until:
        conds.append(time_column < _utc(flt.until))
    if cursor:
        c_time, c_id = decode_cursor(cursor)
        conds.append(or_(time_column < c_time, and_(time_column == c_time, c.id < c_id)))
    return conds


def _quarantine_row(item: Rejected, received_at: datetime) -> dict[str, Any]:
    try:
        payload = orjson.dumps(redact_payload(item.payload), option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        payload = repr(item.payload)
    truncated = len(payload) > MAX_QUARANTINE_PAYLOAD
    return {
        "received_at": received_at,
        "origin": item.origin,
        "reason": item.reason,
        "payload": payload[:MAX_QUARANTINE_PAYLOAD],
        "payload_truncated": truncated,
    }


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")  # a 200 means the alerts reached the disk
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()


class AlertStore:
    """Owns one SQLAlchemy engine. Methods are synchronous; async callers run them in a thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            if url.startswith("sqlite"):
                self.engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
                _configure_sqlite(self.engine)
            else:
                self.engine = create_engine(url, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot use database URL: {exc}") from None

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from exc

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                # detect and api processes start together: one migrates, the others wait, then see it done.
                # Bounded: a stuck migration fails the start with an error instead of hanging it.
                conn.execute(text("SET LOCAL lock_timeout = '60s'"))
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def ping(self) -> None:
        with self._tx() as conn:
            conn.execute(select(1))

    def write(
        self,
        alerts: Sequence[Alert],
        rejected: Sequence[Rejected] = (),
        states: dict[str, tuple[int | None, dict[str, Any]]] | None = None,
        *,
        receipts: Sequence[Receipt] = (),
    ) -> int:
        """Store alerts, rejected items, detector states and event receipts in one transaction; return how many
        alerts were new. Receipts already stored are left as they are (their first `received_at` stays)."""
        now = datetime.now(UTC)
        unique = {a.id: a for a in alerts}
        new = 0
        with self._tx() as conn:
            ids = list(unique)
            existing: set[str] = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                existing.update(conn.scalars(select(alerts_table.c.id).where(alerts_table.c.id.in_(chunk))))
            fresh = sorted((a for i, a in unique.items() if i not in existing), key=lambda a: (a.event_time, a.id))
            rows = [_alert_row(a, now) for a in fresh]
            for row, alert in zip(rows, fresh, strict=True):
                row["group_id"] = self._fold(conn, alert)  # only new alerts count, so redelivery is harmless
            if rows:
                conn.execute(self._insert_ignore(alerts_table), rows)
                new = len(rows)
            keys = list(dict.fromkeys(receipts))
            for start in range(0, len(keys), 1000):
                conn.execute(
                    self._insert_ignore(receipts_table),
                    [{"audit_id": a, "stage": s, "stage_timestamp": t, "received_at": now}
                     for a, s, t in keys[start : start + 1000]],
                )  # fmt: skip
            if rejected:
                conn.execute(insert(quarantine_table), [_quarantine_row(r, now) for r in rejected])
            for scope, (position, state) in (states or {}).items():
                self._save_state(conn, scope, position, state, now)
        return new

    def _fold(self, conn: Connection, alert: Alert) -> str:
        """Put a new alert into its open group (same rule and key, within the suppression window) or a new one."""
        g = groups_table
        window_start = alert.event_time - timedelta(seconds=alert.suppress_s)
        open_group = conn.execute(
            select(g.c.id, g.c.first_seen, g.c.last_seen)
            .where(g.c.rule_id == alert.rule_id, g.c.group_key == alert.group_key, g.c.last_seen >= window_start)
            .order_by(g.c.last_seen.desc())
            .limit(1)
        ).first()
        if open_group is not None:
            changes: dict[str, Any] = {"count": g.c.count + 1}
            if _utc(open_group.last_seen) <= alert.event_time:
                changes.update(last_seen=alert.event_time, last_alert_id=alert.id, last_message=alert.message)
            if _utc(open_group.first_seen) > alert.event_time:
                changes["first_seen"] = alert.event_time
            conn.execute(g.update().where(g.c.id == open_group.id).values(**changes))
            return str(open_group.id)
        group_id = hashlib.sha256(f"{alert.rule_id}\x1f{alert.group_key}\x1f{alert.id}".encode()).hexdigest()[:32]
        conn.execute(
            insert(g),
            [_fit(g, {
                "id": group_id, "rule_id": alert.rule_id, "rule_name": alert.rule_name,
                "severity": alert.severity.label, "severity_rank": int(alert.severity), "group_key": alert.group_key,
                "user_name": alert.impersonated_user or alert.user, "namespace": alert.namespace,
                "first_seen": alert.event_time, "last_seen": alert.event_time, "count": 1,
                "suppress_s": int(alert.suppress_s), "last_alert_id": alert.id, "last_message": alert.message,
            })],
        )  # fmt: skip
        return group_id

    def list_groups(
        self, flt: AlertFilter, *, limit: int, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Alert groups, most recently active first; `since`/`until` apply to their last alert."""
        g = groups_table
        conds = _conditions(g, g.c.last_seen, flt, cursor)
        query = select(g)
        if conds:
            query = query.where(and_(*conds))
        query = query.order_by(g.c.last_seen.desc(), g.c.id.desc()).limit(limit + 1)
        with self._tx() as conn:
            rows = list(conn.execute(query))
        items = [
            {
                "id": r.id, "rule": r.rule_name, "rule_id": r.rule_id, "severity": r.severity, "user": r.user_name,
                "namespace": r.namespace, "first_seen": _iso(r.first_seen), "last_seen": _iso(r.last_seen),
                "count": r.count, "suppress_s": r.suppress_s, "last_alert_id": r.last_alert_id,
                "last_message": r.last_message,
            }
            for r in rows[:limit]
        ]  # fmt: skip
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor(last.last_seen, last.id)
        return items, next_cursor

    def _save_state(
        self, conn: Connection, scope: str, position: int | None, state: dict[str, Any], now: datetime
    ) -> None:
        row = {"scope": scope, "position": position, "state": orjson.dumps(state).decode(), "updated_at": now}
        t = state_table
        updated = conn.execute(
            t.update().where(t.c.scope == scope).values(position=position, state=row["state"], updated_at=now)
        )
        if updated.rowcount == 0:
            conn.execute(insert(t), [row])

    def load_state(self, scope: str) -> tuple[int | None, dict[str, Any]] | None:
        """The last checkpoint of a scope: (position, state), or None."""
        with self._tx() as conn:
            row = conn.execute(select(state_table).where(state_table.c.scope == scope)).first()
        if row is None:
            return None
        return row.position, orjson.loads(row.state)

    def _insert_ignore(self, table: Table) -> Any:
        """INSERT that skips rows whose primary key is already there."""
        keys = [c.name for c in table.primary_key.columns]
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing(index_elements=keys)
        if self.engine.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)
        return insert(table)

    def list_alerts(
        self, flt: AlertFilter, *, limit: int, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first (event time, then id); returns a page and the cursor of the next one."""
        t = alerts_table
        query = select(*(c for c in t.c if c.name != "event"))
        conds = _conditions(t, t.c.event_time, flt, cursor)
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
        with self._tx() as conn:
            row = conn.execute(select(alerts_table).where(alerts_table.c.id == alert_id)).first()
        return row_to_dict(row, with_event=True) if row is not None else None

    def count_alerts(self) -> int:
        with self._tx() as conn:
            return int(conn.scalar(select(func.count()).select_from(alerts_table)) or 0)

    def list_receipts(
        self, *, audit_id: str | None = None, limit: int, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Receipts in key order (auditID, stage, stageTimestamp ascending); a page and the next page's cursor."""
        r = receipts_table
        conds: list[Any] = []
        if audit_id is not None:
            conds.append(r.c.audit_id == audit_id)
        if cursor:
            c_id, c_stage, c_ts = decode_receipt_cursor(cursor)
            conds.append(
                or_(
                    r.c.audit_id > c_id,
                    and_(r.c.audit_id == c_id, r.c.stage > c_stage),
                    and_(r.c.audit_id == c_id, r.c.stage == c_stage, r.c.stage_timestamp > c_ts),
                )
            )
        query = select(r).where(and_(*conds)) if conds else select(r)
        query = query.order_by(r.c.audit_id, r.c.stage, r.c.stage_timestamp).limit(limit + 1)
        with self._tx() as conn:
            rows = list(conn.execute(query))
        items = [
            {"audit_id": x.audit_id, "stage": x.stage, "stage_timestamp": x.stage_timestamp,
             "received_at": _iso(x.received_at)}
            for x in rows[:limit]
        ]  # fmt: skip
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
        cutoff = r.c.received_at < _utc(before)
        with self._tx() as conn:
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

    def close(self) -> None:
        self.engine.dispose()


class ReceiptRetention:
    """Prunes receipts older than the retention, at most once every `every_s` (sooner while behind), a bounded
    number of rows at a time, so it costs one indexed DELETE every few minutes. Callers serialise calls."""

    def __init__(self, store: AlertStore, retention_hours: float, *, every_s: float = 300.0) -> None:
        self.store = store
        self.retention = timedelta(hours=retention_hours)
        self.every_s = every_s
        self.max_rows = 100_000
        self._last = float("-inf")

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    def run(self) -> int:
        """Prune now; a failure is logged, never raised (the batch it follows is already stored)."""
        self._last = time.monotonic()
        try:
            pruned = self.store.prune_receipts(datetime.now(UTC) - self.retention, max_rows=self.max_rows)
        except StoreError as exc:
            log.warning("could not prune event receipts (will retry): %s", exc)
            return 0
        if pruned >= self.max_rows:
            self._last = float("-inf")  # behind: prune again after the next batch
        return pruned
