"""Folding a batch's new alerts into alert groups: one query per rule and one write per group, not per alert.

An alert joins the group of its rule and group key whose last alert is the latest, when that one lies within
the alert's suppression window; otherwise it opens a group of its own. A noisy rule raises hundreds of alerts
into a few groups, so the batch is folded in memory: the latest group of each key is read once (for every key
of the batch, from the earliest window any of its alerts reaches), kept up to date as alerts join, and each
group changed is written once at the end. A group of a key that is not the latest one is never joined, so
reading only the latest is exact; so is reading from the earliest window, as a later window only asks more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Connection

from api.rows import new_group_row, utc
from api.tables import groups_table
from api.triage import reopen_group
from detectors.alerts import Alert

_EARLIEST = datetime.min.replace(tzinfo=UTC)
_KEYS_PER_QUERY = 500


def window_start(alert: Alert) -> datetime:
    """The earliest last alert of a group this alert still joins (year 1 at the earliest)."""
    try:
        return alert.event_time - timedelta(seconds=alert.suppress_s)
    except OverflowError:
        return _EARLIEST


@dataclass
class _Group:
    """A group as the batch leaves it: `row` for one the batch opens (inserted at the end), else what changed."""

    id: str
    first_seen: datetime
    last_seen: datetime
    row: dict[str, Any] | None = None
    joined: int = 0
    last_alert: Alert | None = None  # the alert that moved last_seen, if any did
    first_moved: bool = False


class GroupFolder:
    """Folds alerts, in time order, into groups; `write()` stores what the fold changed."""

    def __init__(self, conn: Connection, alerts: Sequence[Alert]) -> None:
        self._conn = conn
        self._latest = self._latest_groups(alerts)
        self._changed: dict[str, _Group] = {}

    def _latest_groups(self, alerts: Sequence[Alert]) -> dict[tuple[str, str], _Group]:
        keys_by_rule: dict[str, set[str]] = {}
        for alert in alerts:
            keys_by_rule.setdefault(alert.rule_id, set()).add(alert.group_key)
        since = min((window_start(a) for a in alerts), default=_EARLIEST)
        g = groups_table
        latest: dict[tuple[str, str], _Group] = {}
        for rule_id, keys in keys_by_rule.items():
            ordered = sorted(keys)
            for start in range(0, len(ordered), _KEYS_PER_QUERY):
                rows = self._conn.execute(
                    select(g.c.id, g.c.group_key, g.c.first_seen, g.c.last_seen).where(
                        g.c.rule_id == rule_id,
                        g.c.group_key.in_(ordered[start : start + _KEYS_PER_QUERY]),
                        g.c.last_seen >= since,
                    )
                )
                for row in rows:
                    last_seen = utc(row.last_seen)
                    known = latest.get((rule_id, row.group_key))
                    if known is None or last_seen > known.last_seen:
                        group = _Group(str(row.id), utc(row.first_seen), last_seen)
                        latest[(rule_id, row.group_key)] = group
        return latest

    def fold(self, alert: Alert) -> str:
        """The id of the group the alert joins or opens."""
        key = (alert.rule_id, alert.group_key)
        group = self._latest.get(key)
        if group is None or group.last_seen < window_start(alert):
            group_id = hashlib.sha256(f"{alert.rule_id}\x1f{alert.group_key}\x1f{alert.id}".encode()).hexdigest()[:32]
            group = _Group(group_id, alert.event_time, alert.event_time, row=new_group_row(alert, group_id))
            self._latest[key] = self._changed[group_id] = group
            return group_id
        group.joined += 1
        if group.last_seen <= alert.event_time:
            group.last_seen, group.last_alert = alert.event_time, alert
        if group.first_seen > alert.event_time:
            group.first_seen, group.first_moved = alert.event_time, True
        self._changed[group.id] = group
        return group.id

    def write(self) -> None:
        """Insert the groups the batch opened and update the others it changed (one statement per shape)."""
        opened = [self._opened_row(group) for group in self._changed.values() if group.row is not None]
        if opened:
            self._conn.execute(insert(groups_table), opened)
        self._reopen(sorted(group.id for group in self._changed.values() if group.row is None))
        updates: dict[tuple[bool, bool], list[dict[str, Any]]] = {}
        for group in self._changed.values():
            if group.row is None:
                params: dict[str, Any] = {"b_id": group.id, "b_joined": group.joined}
                if group.first_moved:
                    params["b_first_seen"] = group.first_seen
                if group.last_alert is not None:
                    alert = group.last_alert
                    params.update(b_last_seen=alert.event_time, b_last_alert_id=alert.id, b_last_message=alert.message)
                updates.setdefault((group.first_moved, group.last_alert is not None), []).append(params)
        g = groups_table
        for (first_moved, last_moved), rows in updates.items():
            values: dict[str, Any] = {"count": g.c.count + bindparam("b_joined")}
            if first_moved:
                values["first_seen"] = bindparam("b_first_seen")
            if last_moved:
                values.update(last_seen=bindparam("b_last_seen"), last_alert_id=bindparam("b_last_alert_id"),
                              last_message=bindparam("b_last_message"))  # fmt: skip
            self._conn.execute(g.update().where(g.c.id == bindparam("b_id")).values(**values), rows)

    def _reopen(self, group_ids: list[str]) -> None:
        """The closed ones of the groups alerts joined are opened again. Their status is read under their rows'
        locks (taken in one order by every writer): on PostgreSQL a triage that closes a group while this batch
        runs would otherwise be read as open and, committed first, leave the group closed with this batch's
        open alerts in it (the triage closes only the alerts it sees)."""
        g = groups_table
        for start in range(0, len(group_ids), _KEYS_PER_QUERY):
            chunk = group_ids[start : start + _KEYS_PER_QUERY]
            locked = select(g.c.id, g.c.status).where(g.c.id.in_(chunk)).order_by(g.c.id).with_for_update()
            for row in self._conn.execute(locked).all():
                reopen_group(self._conn, str(row.id), row.status)

    @staticmethod
    def _opened_row(group: _Group) -> dict[str, Any]:
        row = dict(group.row or {})
        row["count"] = 1 + group.joined
        row["first_seen"] = group.first_seen
        if group.last_alert is not None:
            latest = new_group_row(group.last_alert, group.id)  # bounded as the first one's
            row.update(last_seen=latest["last_seen"], last_alert_id=latest["last_alert_id"],
                       last_message=latest["last_message"])  # fmt: skip
        return row
