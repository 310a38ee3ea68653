"""Triage of alerts and alert groups: status, assignee and notes, every change kept in a history of its own.

There is no user system: an `author` or an `assignee` is a label the client gives, not an identity (whoever
holds the read-write token may write any). Notes and labels are redacted like everything else stored, so
nobody keeps a credential in a note.

Triage of a group acts on the group and on every alert in it; the group's note is stored once, on the group
(an alert's detail shows its own notes and its group's). Detection never writes these columns: a new alert
starts `open`, and a redelivered one is not written again. A new alert that joins a closed group (resolved
or false positive) opens it again (`reopen_group`), since what was closed is going on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import Row, Table, and_, insert, or_, select
from sqlalchemy.engine import Connection

from api.rows import iso
from api.tables import LABEL_MAX, alerts_table, bounded, groups_table, history_table, notes_table, storable
from detectors.redact import redact_string

STATUSES = ("open", "acknowledged", "resolved", "false_positive")
CLOSED = frozenset({"resolved", "false_positive"})
SYSTEM_AUTHOR = "auditwatch"  # the author of the changes auditwatch makes itself (a group opened again)
ALERT, GROUP = "alert", "group"


class Unset(Enum):
    UNSET = "unset"


UNSET = Unset.UNSET


@dataclass(frozen=True, slots=True)
class TriageChange:
    """What one triage call asks for: a new status, a new assignee (None unassigns), a note to append."""

    author: str
    status: str | None = None
    assignee: str | None | Unset = UNSET
    note: str | None = None


@dataclass(frozen=True, slots=True)
class GroupClosed:
    """An alert group that triage just resolved or marked a false positive (its previous status was open or
    acknowledged)."""

    group_id: str
    status: str
    previous: str
    author: str
    at: datetime


@dataclass(frozen=True)
class TriageHooks:
    """Where other parts of auditwatch hear about triage.

    `group_closed` hooks run inside the transaction of the change, with its connection, so what they write
    (an outbox row, say) commits or rolls back with it; `exceptions_changed` hooks run after an exception
    was created or deleted and committed (serve reloads its exceptions at once).
    """

    group_closed: list[Callable[[Connection, GroupClosed], None]] = field(default_factory=list)
    exceptions_changed: list[Callable[[], None]] = field(default_factory=list)


def clean_text(text: str) -> str:
    """A note or comment as stored: credentials redacted, NULs and lone surrogates replaced."""
    cleaned: str = storable(redact_string(text))
    return cleaned


def clean_label(text: str) -> str:
    """An author, assignee or rule id as stored: clean, and within its column (redaction may lengthen it)."""
    return bounded(clean_text(text), LABEL_MAX)


def _cleaned(change: TriageChange) -> TriageChange:
    assignee = change.assignee
    return TriageChange(
        author=clean_label(change.author),
        status=change.status,
        assignee=clean_label(assignee) if isinstance(assignee, str) else assignee,
        note=None if change.note is None else clean_text(change.note),
    )


def _locked(conn: Connection, table: Table, row_id: str) -> Row[Any, Any] | None:
    """The row's status and assignee, read under its write lock (a no-op update takes it first, on SQLite as
    on PostgreSQL), so that concurrent triage of one row is serialised and the history's from/to are exact."""
    touched = conn.execute(table.update().where(table.c.id == row_id).values(status=table.c.status))
    if touched.rowcount == 0:
        return None
    return conn.execute(select(table.c.status, table.c.assignee).where(table.c.id == row_id)).one()


def _requested(change: TriageChange) -> dict[str, Any]:
    """The columns the change sets, and their new values."""
    values: dict[str, Any] = {}
    if change.status is not None:
        values["status"] = change.status
    if not isinstance(change.assignee, Unset):
        values["assignee"] = change.assignee
    return values


def _differing(row: Any, requested: Mapping[str, Any]) -> dict[str, Any]:
    """The requested values that the row does not hold yet."""
    return {name: value for name, value in requested.items() if getattr(row, name) != value}


def _history(
    target: str, target_id: str, before: Any, values: Mapping[str, Any], change: TriageChange, at: datetime,
    via_group: str | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    return [
        {"target": target, "target_id": target_id, "at": at, "author": change.author, "field": name,
         "old_value": getattr(before, name), "new_value": value, "via_group": via_group}
        for name, value in values.items()
    ]  # fmt: skip


Rows = list[dict[str, Any]]


def _note_rows(target: str, target_id: str, change: TriageChange, at: datetime) -> tuple[Rows, Rows]:
    """The note's row and its history row (the history keeps the text too: it is the audit trail)."""
    if change.note is None:
        return [], []
    note = {"target": target, "target_id": target_id, "at": at, "author": change.author, "text": change.note}
    entry = {"target": target, "target_id": target_id, "at": at, "author": change.author, "field": "note",
             "old_value": None, "new_value": change.note, "via_group": None}  # fmt: skip
    return [note], [entry]


def _write_rows(conn: Connection, history: Rows, notes: Rows) -> None:
    for start in range(0, len(history), 1000):
        conn.execute(insert(history_table), history[start : start + 1000])
    if notes:
        conn.execute(insert(notes_table), notes)


def triage_alert(
    conn: Connection, alert_id: str, change: TriageChange, at: datetime, hooks: TriageHooks | None = None
) -> bool:
    """Apply the change to one alert; False when there is no such alert. An alert that closes the last open or
    acknowledged one of its group closes the group too (`_close_group`)."""
    change = _cleaned(change)
    a = alerts_table
    group_id: str | None = None
    group: Row[Any, Any] | None = None
    if change.status in CLOSED:  # the group is locked before the alert, in triage_group's order
        group_id = conn.execute(select(a.c.group_id).where(a.c.id == alert_id)).scalar_one_or_none()
        group = None if group_id is None else _locked(conn, groups_table, group_id)
    before = _locked(conn, a, alert_id)
    if before is None:
        return False
    values = _differing(before, _requested(change))
    if values:
        conn.execute(a.update().where(a.c.id == alert_id).values(**values))
    notes, note_history = _note_rows(ALERT, alert_id, change, at)
    _write_rows(conn, _history(ALERT, alert_id, before, values, change, at) + note_history, notes)
    if group_id is not None and group is not None and "status" in values and group.status not in CLOSED:
        _close_group(conn, group_id, group, change, at, hooks or TriageHooks())
    return True


def _close_group(
    conn: Connection, group_id: str, before: Any, change: TriageChange, at: datetime, hooks: TriageHooks
) -> None:
    """The group of an alert that triage just closed: closed too, with the same status, once none of its alerts
    is open or acknowledged; then the `group_closed` hooks run (Alertmanager resolves it), as for a group's own
    triage. Else Alertmanager would go on firing for an alert that the console, which triages alerts, closed."""
    a, g = alerts_table, groups_table
    pending = conn.execute(select(a.c.id).where(a.c.group_id == group_id, a.c.status.not_in(sorted(CLOSED))).limit(1))
    if pending.first() is not None:
        return
    status = str(change.status)
    conn.execute(g.update().where(g.c.id == group_id).values(status=status))
    conn.execute(insert(history_table), _history(GROUP, group_id, before, {"status": status}, change, at))
    closed = GroupClosed(group_id, status, before.status, change.author, at)
    for hook in hooks.group_closed:
        hook(conn, closed)


def triage_group(conn: Connection, group_id: str, change: TriageChange, at: datetime, hooks: TriageHooks) -> int | None:
    """Apply the change to a group and every alert in it; how many alerts changed, or None when there is no
    such group. Runs the `group_closed` hooks when the group was just closed."""
    change = _cleaned(change)
    before = _locked(conn, groups_table, group_id)
    if before is None:
        return None
    requested = _requested(change)
    values = _differing(before, requested)
    g, a = groups_table, alerts_table
    if values:
        conn.execute(g.update().where(g.c.id == group_id).values(**values))
    notes, note_history = _note_rows(GROUP, group_id, change, at)
    history = _history(GROUP, group_id, before, values, change, at) + note_history
    changed = 0
    members = conn.execute(select(a.c.id, a.c.status, a.c.assignee).where(a.c.group_id == group_id)).all()
    for alert in members:
        alert_values = _differing(alert, requested)
        if alert_values:
            changed += 1
            history += _history(ALERT, alert.id, alert, alert_values, change, at, via_group=group_id)
    if changed:
        conn.execute(a.update().where(a.c.group_id == group_id).values(**requested))
    _write_rows(conn, history, notes)
    new_status = values.get("status")
    if new_status in CLOSED and before.status not in CLOSED:
        closed = GroupClosed(group_id, new_status, before.status, change.author, at)
        for hook in hooks.group_closed:
            hook(conn, closed)
    return changed


def reopen_group(conn: Connection, group_id: str, status: str) -> None:
    """A new alert joined the group: if it was closed (resolved, false positive), it is open again."""
    if status not in CLOSED:
        return
    g = groups_table
    conn.execute(g.update().where(g.c.id == group_id).values(status="open"))
    conn.execute(insert(history_table), [{
        "target": GROUP, "target_id": group_id, "at": datetime.now(UTC), "author": SYSTEM_AUTHOR,
        "field": "status", "old_value": status, "new_value": "open", "via_group": None,
    }])  # fmt: skip


def history_of(conn: Connection, target: str, target_id: str, limit: int) -> list[dict[str, Any]]:
    """The triage history of an alert or a group, oldest first (at most `limit` entries)."""
    h = history_table
    rows = conn.execute(select(h).where(h.c.target == target, h.c.target_id == target_id).order_by(h.c.id).limit(limit))
    return [
        {"at": iso(r.at), "author": r.author, "field": r.field, "old": r.old_value, "new": r.new_value,
         "via_group": r.via_group}
        for r in rows
    ]  # fmt: skip


def notes_of(conn: Connection, targets: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """The notes of these alerts and groups, oldest first."""
    if not targets:
        return []
    n = notes_table
    which = or_(*(and_(n.c.target == kind, n.c.target_id == key) for kind, key in targets))
    rows = conn.execute(select(n).where(which).order_by(n.c.at, n.c.id))
    return [{"at": iso(r.at), "author": r.author, "text": r.text, "on": r.target} for r in rows]
