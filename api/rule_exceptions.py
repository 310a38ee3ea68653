"""Rule exceptions in the store: created (from scratch or from an alert), listed, deleted, loaded, hits counted.

What an exception means and how it matches is `detectors.exceptions`; here they are rows. Ids are random
(two identical exceptions are two rows). `hits` counts the alerts an exception kept out of the store, each
once: a hit is recorded by the id the alert would have had (deterministic, from the event) in the batch's own
transaction, so a redelivered batch or a second replay of the same file counts nothing again; `last_hit` is
when it last kept out an alert not counted before.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from api.rows import iso, utc
from api.tables import alerts_table, exception_hits_table, exceptions_table, insert_ignore
from api.triage import clean_label, clean_text
from detectors.exceptions import ExceptionError, RuleException, check_match, field_values, literal_glob

# What "the same kind of event" is when an exception is made from an alert without naming its fields:
# the same user doing the same thing to the same kind of object in the same namespace (not the same object,
# whose name is often generated).
DEFAULT_FIELDS = ("user.username", "verb", "objectRef.resource", "objectRef.subresource", "objectRef.namespace")


class AlertNotFound(LookupError):
    """`from_alert` names no stored alert."""


@dataclass(frozen=True, slots=True)
class NewException:
    """An exception to create. A field whose globs are None takes its values from the alert `from_alert`;
    with `from_alert` and no fields at all, the DEFAULT_FIELDS that the alert has are taken."""

    author: str
    comment: str = ""
    rule_id: str | None = None
    match: Mapping[str, Sequence[str] | None] | None = None
    expires_at: datetime | None = None
    from_alert: str | None = None


def _filled(conn: Connection, new: NewException) -> tuple[str, dict[str, tuple[str, ...]]]:
    """The rule id and conditions, taken from the alert where asked; ExceptionError when they do not make an
    exception, AlertNotFound when the alert is not there."""
    match = dict(new.match or {})
    if new.from_alert is None:
        if new.rule_id is None:
            raise ExceptionError("rule_id is required (or from_alert, to take it from an alert)")
        missing = [path for path, globs in match.items() if globs is None]
        if missing:
            raise ExceptionError(f"fields without values need from_alert to take them from: {', '.join(missing)}")
        return new.rule_id, {path: tuple(globs or ()) for path, globs in match.items()}
    a = alerts_table
    alert = conn.execute(select(a.c.rule_id, a.c.event).where(a.c.id == new.from_alert)).first()
    if alert is None:
        raise AlertNotFound("from_alert: no alert has this id")
    if new.rule_id is not None and new.rule_id != alert.rule_id:
        raise ExceptionError(f"rule_id: must be the rule of the alert from_alert names ({alert.rule_id}) or left out")
    if not match:
        match = {path: None for path in DEFAULT_FIELDS if field_values(alert.event, path) not in ([], [""])}
    filled: dict[str, tuple[str, ...]] = {}
    for path, globs in match.items():
        if globs is None:
            values = field_values(alert.event, path)
            if not values:
                raise ExceptionError(f"match: field {path!r} has no value in the alert")
            globs = [literal_glob(v) for v in dict.fromkeys(values)]
        filled[path] = tuple(globs)
    return alert.rule_id, filled


def create_exception(conn: Connection, new: NewException, now: datetime) -> dict[str, Any]:
    """Store a new exception; ExceptionError (the conditions do not compile) or AlertNotFound."""
    rule_id, match = _filled(conn, new)
    match = {clean_text(path): tuple(clean_text(g) for g in globs) for path, globs in match.items()}
    check_match(match)
    row = {
        "id": uuid.uuid4().hex, "rule_id": clean_label(rule_id), "match": {k: list(v) for k, v in match.items()},
        "comment": clean_text(new.comment), "author": clean_label(new.author), "created_at": now,
        "expires_at": None if new.expires_at is None else utc(new.expires_at), "from_alert": new.from_alert,
        "hits": 0, "last_hit": None,
    }  # fmt: skip
    conn.execute(exceptions_table.insert(), [row])
    return exception_to_dict(row, now)


def exception_to_dict(row: Any, now: datetime) -> dict[str, Any]:
    m = row if isinstance(row, Mapping) else row._mapping
    expires = m["expires_at"]
    return {
        "id": m["id"], "rule_id": m["rule_id"], "match": {k: list(v) for k, v in m["match"].items()},
        "comment": m["comment"], "author": m["author"], "created_at": iso(m["created_at"]),
        "expires_at": None if expires is None else iso(expires), "from_alert": m["from_alert"],
        "active": expires is None or utc(expires) > now, "hits": int(m["hits"]),
        "last_hit": None if m["last_hit"] is None else iso(m["last_hit"]),
    }  # fmt: skip


def list_exceptions(conn: Connection, now: datetime, rule_id: str | None = None) -> list[dict[str, Any]]:
    """Every exception (expired ones too, marked inactive), newest first."""
    e = exceptions_table
    query = select(e).order_by(e.c.created_at.desc(), e.c.id)
    if rule_id is not None:
        query = query.where(e.c.rule_id == rule_id)
    return [exception_to_dict(row, now) for row in conn.execute(query)]


def get_exception(conn: Connection, exception_id: str, now: datetime) -> dict[str, Any] | None:
    row = conn.execute(select(exceptions_table).where(exceptions_table.c.id == exception_id)).first()
    return None if row is None else exception_to_dict(row, now)


def delete_exception(conn: Connection, exception_id: str) -> bool:
    """Delete the exception, then its hits: a batch recording hits for it holds its row (`record_hits`), so
    its hits are committed before this looks for them, or it finds the exception gone."""
    e, h = exceptions_table, exception_hits_table
    deleted = bool(conn.execute(e.delete().where(e.c.id == exception_id)).rowcount)
    conn.execute(h.delete().where(h.c.exception_id == exception_id))
    return deleted


def active_exceptions(conn: Connection, now: datetime) -> list[RuleException]:
    """The exceptions that have not expired, for detection."""
    e = exceptions_table
    rows = conn.execute(select(e.c.id, e.c.rule_id, e.c.match, e.c.expires_at).where(
        (e.c.expires_at.is_(None)) | (e.c.expires_at > now)
    ))  # fmt: skip
    return [
        RuleException(r.id, r.rule_id, {path: tuple(globs) for path, globs in r.match.items()},
                      None if r.expires_at is None else utc(r.expires_at))
        for r in rows
    ]  # fmt: skip


def record_hits(conn: Connection, hits: Mapping[str, Sequence[str]], at: datetime) -> int:
    """Record the alerts that exceptions suppressed (exception id -> the alerts' ids), each (exception, alert)
    once: an exception's `hits` grows by the alerts new to it, and `last_hit` becomes `at` when there are any.
    How many were new. An exception deleted meanwhile is skipped."""
    e, h = exceptions_table, exception_hits_table
    wanted = sorted(exception_id for exception_id, alert_ids in hits.items() if alert_ids)
    if not wanted:
        return 0
    # Their rows are held (in one order for every writer: no deadlock) until the batch commits, so that a
    # delete waits, then finds these hits to delete too. SQLite has no FOR UPDATE: its writer holds the lock.
    found = conn.scalars(select(e.c.id).where(e.c.id.in_(wanted)).order_by(e.c.id).with_for_update()).all()
    new = 0
    for exception_id in found:
        rows = [{"exception_id": exception_id, "alert_id": alert_id, "hit_at": at}
                for alert_id in dict.fromkeys(hits[exception_id])]  # fmt: skip
        count = 0
        for start in range(0, len(rows), 1000):
            inserted = insert_ignore(conn, h).returning(h.c.alert_id)
            count += len(conn.scalars(inserted, rows[start : start + 1000]).all())
        if count:
            conn.execute(e.update().where(e.c.id == exception_id).values(hits=e.c.hits + count, last_hit=at))
        new += count
    return new
