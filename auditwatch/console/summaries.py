"""What the console counts in the alert store: alerts per severity and per rule of a filtered range, per rule
overall, and the source addresses and user agents a principal's alerts show."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from api.batchwrite import store_error
from api.queries import AlertFilter, conditions
from api.rows import iso
from api.store import AlertStore
from api.tables import alerts_table

MAX_PRINCIPAL_ALERTS = 5000  # the newest alerts of a principal its addresses and user agents are read from


@contextmanager
def _reading(store: AlertStore) -> Iterator[Connection]:
    try:
        with store.engine.connect() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise store_error(exc) from exc


@dataclass(frozen=True)
class RangeCounts:
    """Alerts of a filtered range per severity (label -> count) and per rule ((rule id, name), count)."""

    severities: dict[str, int]
    rules: list[tuple[str, str, int]]

    @property
    def total(self) -> int:
        return sum(self.severities.values())


def range_counts(store: AlertStore, flt: AlertFilter, *, max_rules: int = 20) -> RangeCounts:
    """Counts for the alerts `flt` selects (every page of it); the `max_rules` rules with most alerts."""
    t = alerts_table
    conds = conditions(t, t.c.event_time, flt, None)
    where = and_(*conds) if conds else true()
    n = func.count().label("n")
    with _reading(store) as conn:
        severities = {
            row.severity: int(row.n)
            for row in conn.execute(select(t.c.severity, n).where(where).group_by(t.c.severity))
        }
        rules = conn.execute(
            select(t.c.rule_id, func.max(t.c.rule_name).label("name"), n)
            .where(where).group_by(t.c.rule_id).order_by(n.desc(), t.c.rule_id).limit(max_rules)
        ).all()  # fmt: skip
    return RangeCounts(severities, [(r.rule_id, r.name, int(r.n)) for r in rules])


@dataclass(frozen=True)
class RuleActivity:
    count: int
    last: str  # the event time of its newest alert


def rule_activity(store: AlertStore) -> dict[str, RuleActivity]:
    """Rule id -> how many alerts it has stored, and when its newest one happened."""
    t = alerts_table
    query = select(t.c.rule_id, func.count().label("n"), func.max(t.c.event_time).label("last")).group_by(t.c.rule_id)
    with _reading(store) as conn:
        return {r.rule_id: RuleActivity(int(r.n), iso(r.last) if isinstance(r.last, datetime) else str(r.last))
                for r in conn.execute(query)}  # fmt: skip


@dataclass(frozen=True)
class Sightings:
    """Where a principal's alerts came from: addresses and user agents with how many alerts showed each."""

    source_ips: list[tuple[str, int]]
    user_agents: list[tuple[str, int]]
    first: str | None
    last: str | None
    alerts: int


def principal_sightings(store: AlertStore, user: str) -> Sightings:
    """What the newest MAX_PRINCIPAL_ALERTS alerts of the authenticated user `user` show."""
    t = alerts_table
    query = (select(t.c.source_ips, t.c.user_agent, t.c.event_time).where(t.c.user_name == user)
             .order_by(t.c.event_time.desc()).limit(MAX_PRINCIPAL_ALERTS))  # fmt: skip
    with _reading(store) as conn:
        rows = conn.execute(query).all()
    ips: Counter[str] = Counter(ip for r in rows for ip in (r.source_ips or []))
    agents: Counter[str] = Counter(r.user_agent for r in rows if r.user_agent)
    times = [iso(r.event_time) for r in rows]
    return Sightings(ips.most_common(), agents.most_common(), min(times, default=None), max(times, default=None),
                     len(rows))  # fmt: skip
