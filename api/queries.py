"""Reading the alert store: filters, pagination cursors, and the WHERE clauses they make."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Table, and_, or_

from api.errors import CursorError
from api.rows import iso, utc
from api.tables import Receipt, receipts_table
from detectors.alerts import Severity


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """What a list of alerts (or of alert groups) is narrowed to."""

    min_severity: Severity | None = None
    rule: str | None = None
    user: str | None = None
    namespace: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    statuses: tuple[str, ...] = ()  # any of these triage statuses
    assignee: str | None = None
    group: str | None = None  # alerts: those of this alert group (its id); groups: that group


# The times `since` and `until` may name: wider than any audit log, narrow enough for every database.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def checked_utc(value: datetime) -> datetime:
    """`value` in UTC (naive means UTC); ValueError when that is not a date (0001-01-01T00:00:00+14:00)."""
    try:
        return utc(value)
    except OverflowError:
        raise ValueError("out of range: not a date in UTC") from None


def bounded_utc(value: datetime) -> datetime:
    """`value` in UTC; ValueError when it lies outside [EARLIEST, LATEST)."""
    try:
        converted: datetime | None = checked_utc(value)
    except ValueError:
        converted = None
    if converted is None or not EARLIEST <= converted < LATEST:
        raise ValueError(f"out of range: must lie between {iso(EARLIEST)} and {iso(LATEST)}")
    return converted


def has_nul(text: str) -> bool:
    """PostgreSQL text cannot hold NUL: a value with one can match nothing, and the database refuses it."""
    return "\x00" in text


def encode_cursor(event_time: datetime, alert_id: str) -> str:
    raw = orjson.dumps([iso(event_time), alert_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_BAD_CURSOR = "invalid cursor: pass the next_cursor of the previous page unchanged"


def _unb64(cursor: str) -> Any:
    return orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        time_text, alert_id = _unb64(cursor)
        if not isinstance(alert_id, str) or has_nul(alert_id):
            raise ValueError(alert_id)
        # any time a stored alert may have, not only the range of `since`
        return checked_utc(datetime.fromisoformat(time_text)), alert_id
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise CursorError(_BAD_CURSOR) from None


def encode_rank_cursor(offset: int) -> str:
    """A priority page's cursor: where the next page starts in the period's ranking."""
    return base64.urlsafe_b64encode(orjson.dumps({"ranked_from": offset})).decode().rstrip("=")


def decode_rank_cursor(cursor: str, ranked_at_most: int) -> int:
    try:
        key = _unb64(cursor)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise CursorError(_BAD_CURSOR) from None
    offset = key.get("ranked_from") if isinstance(key, dict) else None
    if type(offset) is not int or not 0 < offset <= ranked_at_most:
        raise CursorError(_BAD_CURSOR)
    return offset


def encode_receipt_cursor(key: Receipt) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_receipt_cursor(cursor: str) -> Receipt:
    try:
        key = _unb64(cursor)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise CursorError(_BAD_CURSOR) from None
    if not (isinstance(key, list) and len(key) == 3 and all(isinstance(p, str) and not has_nul(p) for p in key)):
        raise CursorError(_BAD_CURSOR)
    return key[0], key[1], key[2]


def encode_quarantine_cursor(row_id: int) -> str:
    """A quarantine page's cursor: the rows after it are older (lower ids)."""
    return base64.urlsafe_b64encode(orjson.dumps({"before_id": row_id})).decode().rstrip("=")


def decode_quarantine_cursor(cursor: str) -> int:
    try:
        key = _unb64(cursor)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise CursorError(_BAD_CURSOR) from None
    row_id = key.get("before_id") if isinstance(key, dict) else None
    if type(row_id) is not int or not 0 < row_id < 2**63:
        raise CursorError(_BAD_CURSOR)
    return row_id


def conditions(table: Table, time_column: Any, flt: AlertFilter, cursor: str | None) -> list[Any]:
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
    if flt.statuses:
        conds.append(c.status.in_(flt.statuses))
    if flt.assignee:
        conds.append(c.assignee == flt.assignee)
    if flt.group:
        conds.append((c.group_id if "group_id" in c else c.id) == flt.group)
    if flt.since:
        conds.append(time_column >= utc(flt.since))
    if flt.until:
        conds.append(time_column < utc(flt.until))
    if cursor:
        c_time, c_id = decode_cursor(cursor)
        conds.append(or_(time_column < c_time, and_(time_column == c_time, c.id < c_id)))
    return conds


def receipt_conditions(audit_id: str | None, cursor: str | None) -> list[Any]:
    """WHERE clauses for receipts: one auditID, and the position (key order) after the cursor."""
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
    return conds
