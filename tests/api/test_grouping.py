"""Folding a batch's alerts into groups in memory: the same groups as folding them one at a time, in a few
statements per batch whatever the number of alerts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from api.queries import AlertFilter
from api.store import AlertStore
from api.triage import TriageChange
from detectors.alerts import Alert
from tests.support.alerts import alerts

START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
TEMPLATE = alerts(1)[0]

# (rule, group key, seconds after START, suppression window in seconds)
ALERT_SPECS = st.lists(
    st.tuples(
        st.sampled_from(["r1", "r2"]),
        st.sampled_from(["k1", "k2", "k3"]),
        st.integers(0, 20_000),
        st.sampled_from([60, 600, 3600]),
    ),  # fmt: skip
    min_size=1,
    max_size=30,
)


def made(specs: list[tuple[str, str, int, int]], tag: str) -> list[Alert]:
    return [
        replace(
            TEMPLATE,
            id=f"{tag}-{i:03d}",
            rule_id=rule,
            group_key=key,
            event_time=START + timedelta(seconds=at),
            suppress_s=window,
            message=f"alert {tag}-{i}",
        )  # fmt: skip
        for i, (rule, key, at, window) in enumerate(specs)
    ]


def groups_of(store: AlertStore) -> list[tuple[Any, ...]]:
    groups, _ = store.list_groups(AlertFilter(), limit=1000)
    return sorted((g["id"], g["count"], g["first_seen"], g["last_seen"], g["status"]) for g in groups)


def closing_every_group(store: AlertStore) -> None:
    groups, _ = store.list_groups(AlertFilter(), limit=1000)
    for g in groups:
        store.triage_group(g["id"], TriageChange(author="test", status="resolved"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(earlier=ALERT_SPECS, batch=ALERT_SPECS)
def test_a_batch_folds_as_its_alerts_would_one_by_one(tmp_path: Path, earlier: Any, batch: Any) -> None:
    """Groups already stored (closed, so joining reopens them), then a batch: written at once, or one alert per
    write in time order (the fold as it was, one query and one update per alert), the groups are the same."""
    stores = []
    for name in ("at-once", "one-by-one"):
        store = AlertStore(f"sqlite:///{tmp_path / f'{name}-{len(list(tmp_path.iterdir()))}.db'}")
        store.migrate()
        store.write(made(earlier, "old"))
        closing_every_group(store)
        stores.append(store)
    at_once, one_by_one = stores
    new = made(batch, "new")
    at_once.write(new)
    for alert in sorted(new, key=lambda a: (a.event_time, a.id)):
        one_by_one.write([alert])
    try:
        assert groups_of(at_once) == groups_of(one_by_one)
        for alert in new:
            assert (at_once.get_alert(alert.id) or {})["group_id"] == (one_by_one.get_alert(alert.id) or {})["group_id"]
    finally:
        for store in stores:
            store.close()


def test_a_batch_of_one_group_costs_a_few_statements(store: AlertStore) -> None:
    """200 alerts of one rule and key, into a group opened by an earlier write: one read of the group, one read
    of its status under its lock (to open it again if closed) and one update of it, not a query and an update per
    alert (and the same for a group the batch opens)."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "alert_groups" in statement:
            statements.append(statement.split()[0].upper())

    first = replace(TEMPLATE, id="first", group_key="k", event_time=START, suppress_s=3600)
    store.write([first])
    event.listen(store.engine, "before_cursor_execute", seen)
    later = [replace(first, id=f"a{i:03d}", event_time=START + timedelta(seconds=i)) for i in range(200)]
    other = [replace(first, id=f"b{i:03d}", group_key="other", event_time=START + timedelta(seconds=i))
             for i in range(200)]  # fmt: skip
    assert store.write(later + other).new_alerts == 400
    event.remove(store.engine, "before_cursor_execute", seen)
    assert sorted(statements) == ["INSERT", "SELECT", "SELECT", "UPDATE"]
    counts = sorted(g[1] for g in groups_of(store))
    assert counts == [200, 201]
