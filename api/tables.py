"""The alert store's schema: its tables, and values bounded to fit their columns and made storable."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    insert,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from detectors.credentials import redact_text
from detectors.events import AuditEvent

_JSON = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData()
_SERIAL = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only
STATUS_MAX = 20  # open, acknowledged, resolved, false_positive
LABEL_MAX = 200  # an assignee or an author: labels a client chooses, not identities

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
    # triage (api/triage.py); never written by detection, so a redelivered batch leaves them as they are
    Column("status", String(STATUS_MAX), nullable=False, server_default="open"),
    Column("assignee", String(LABEL_MAX)),
    Index("ix_alerts_time_id", "event_time", "id"),
    Index("ix_alerts_rule", "rule_id"),
    Index("ix_alerts_user", "user_name"),
    Index("ix_alerts_namespace", "namespace"),
    Index("ix_alerts_status_time_id", "status", "event_time", "id"),
    Index("ix_alerts_assignee", "assignee"),
    Index("ix_alerts_group", "group_id"),  # a group's triage and its alerts (migration 0008)
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
    Column("status", String(STATUS_MAX), nullable=False, server_default="open"),
    Column("assignee", String(LABEL_MAX)),
    Index("ix_groups_lookup", "rule_id", "group_key", "last_seen"),
    Index("ix_groups_last_seen_id", "last_seen", "id"),
    Index("ix_groups_status_last_seen_id", "status", "last_seen", "id"),
    Index("ix_groups_assignee", "assignee"),
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

# Triage of alerts and alert groups: every change of status or assignee, and every note, with its author.
# `target` is "alert" or "group"; a change made to a group's alerts through the group names it in `via_group`.
history_table = Table(
    "triage_history",
    metadata,
    Column("id", _SERIAL, primary_key=True, autoincrement=True),
    Column("target", String(8), nullable=False),
    Column("target_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("author", String(LABEL_MAX), nullable=False),
    Column("field", String(16), nullable=False),  # status, assignee or note
    Column("old_value", Text),
    Column("new_value", Text),
    Column("via_group", String(64)),
    Index("ix_history_target", "target", "target_id", "id"),
)

notes_table = Table(
    "triage_notes",
    metadata,
    Column("id", _SERIAL, primary_key=True, autoincrement=True),
    Column("target", String(8), nullable=False),
    Column("target_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("author", String(LABEL_MAX), nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_notes_target", "target", "target_id", "id"),
)

# Rule exceptions (detectors/exceptions.py): alerts of `rule_id` whose event matches `match` (field path ->
# globs) are not stored; `hits` counts them.
exceptions_table = Table(
    "rule_exceptions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("rule_id", String(200), nullable=False),
    Column("match", _JSON, nullable=False),
    Column("comment", Text, nullable=False),
    Column("author", String(LABEL_MAX), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("from_alert", String(64)),
    Column("hits", BigInteger, nullable=False, server_default="0"),
    Column("last_hit", DateTime(timezone=True)),
)

# The alerts each rule exception kept out of the store, by the id they would have had: a redelivered or replayed
# event's alert is found here and not counted in the exception's `hits` again. Deleted with their exception.
exception_hits_table = Table(
    "rule_exception_hits",
    metadata,
    Column("exception_id", String(32), primary_key=True),
    Column("alert_id", String(64), primary_key=True),
    Column("hit_at", DateTime(timezone=True), nullable=False),
)

Receipt = tuple[str, str, str]  # (auditID, stage, stageTimestamp)
# Detector state to checkpoint: scope -> (the input position it reflects, or None; Pipeline.snapshot())
StateCheckpoints = dict[str, tuple[int | None, dict[str, Any]]]

# Notifications to deliver: one row per (alert, sink), written with the alert (api/outbox.py). A row is due
# when `next_attempt_at` has passed and no sender holds its lease (`leased_until`).
OUTBOX_STATUSES = ("pending", "delivered", "failed", "dropped")
outbox_table = Table(
    "notify_outbox",
    metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("sink", String(200), primary_key=True),  # the sink's public name: never a URL with credentials
    Column("group_id", String(64)),  # the alert's group: Alertmanager posts one alert per group
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("leased_until", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Index("ix_outbox_due", "sink", "status", "next_attempt_at"),
    Index("ix_outbox_status_created", "status", "created_at"),
)

# Alertmanager's side of an alert group, per sink: re-sent while firing, then resolved (api/resends.py).
resends_table = Table(
    "notify_resends",
    metadata,
    Column("sink", String(200), primary_key=True),
    Column("group_id", String(64), primary_key=True),
    Column("state", String(16), nullable=False),  # firing | resolved
    Column("next_at", DateTime(timezone=True), nullable=False),
    Column("leased_until", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Index("ix_resends_due", "sink", "next_at"),
)


def bounded(value: str, limit: int) -> str:
    """`value` if it fits its column, else a prefix and a digest of the whole (still unique, never an error:
    a client-chosen auditID or an RFC 3339 time with a long fraction must not make a batch unstorable)."""
    if len(value) <= limit:
        return value
    return value[: limit - 33] + "~" + hashlib.sha256(value.encode()).hexdigest()[:32]


def receipt_of(event: AuditEvent) -> Receipt:
    """An event's receipt key: auditID, stage and `stageTimestamp` as received ("" if missing; a client-chosen
    auditID that looks like a credential is redacted, as everywhere else)."""
    ts = event.raw.get("stageTimestamp")
    audit_id, stage, stamp = RECEIPT_LIMITS
    return (
        bounded(redact_text(event.audit_id), audit_id),
        bounded(event.stage, stage),
        bounded(ts if isinstance(ts, str) else "", stamp),
    )


def fit(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """Bound every value of a length-limited column: audit events carry client-chosen auditIDs, verbs and
    names, and one over-long value must not make a batch unstorable (on PostgreSQL the insert fails, and the
    webhook would answer 503 to that batch forever, or `detect` retry it forever)."""
    for column in table.c:
        limit = getattr(column.type, "length", None)
        value = row.get(column.name)
        if limit and isinstance(value, str) and len(value) > limit:
            row[column.name] = bounded(value, limit)
    return row


# PostgreSQL refuses NUL in text and jsonb, and no driver encodes a lone surrogate to UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """`value` with every NUL character and lone surrogate in its strings (keys too) replaced by U+FFFD; the
    very same object when it has none. Walks dicts, lists and tuples; a container that orjson encodes without a
    `\\u0000` (it refuses lone surrogates) has none, which is found at C speed (an alert's event can be large)."""
    if isinstance(value, (dict, list, tuple)) and value:
        try:
            if b"\\u0000" not in orjson.dumps(value):
                return value
        except TypeError:  # a lone surrogate, a key that is not a string, a type orjson does not know: the walk
            pass
    return _storable(value)


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value) if _UNSTORABLE.search(value) else value
    if isinstance(value, dict):
        items = [(_storable(k), _storable(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items(), strict=True)):
            return value
        return dict(items)
    if isinstance(value, (list, tuple)):
        clean = [_storable(v) for v in value]
        if all(c is v for c, v in zip(clean, value, strict=True)):
            return value
        return clean if isinstance(value, list) else tuple(clean)
    return value


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
