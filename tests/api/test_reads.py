"""The alert store's reads (api/reads.py) against a real SQLite file: filters, cursor pages, one alert."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.errors import CursorError
from api.queries import AlertFilter
from api.store import AlertStore
from detectors.alerts import Severity
from detectors.events import Rejected
from tests.support.alerts import alerts


def test_pagination_walks_every_alert_once_newest_first(store: AlertStore) -> None:
    store.write(alerts(25))  # pairs share a timestamp: the id breaks ties
    seen: list[str] = []
    times: list[str] = []
    cursor = None
    pages = 0
    while True:
        items, cursor = store.list_alerts(AlertFilter(), limit=4, cursor=cursor)
        seen += [i["id"] for i in items]
        times += [i["time"] for i in items]
        pages += 1
        if cursor is None:
            break
    assert pages == 7 and len(seen) == 25 and len(set(seen)) == 25
    assert times == sorted(times, reverse=True)


def test_filters(store: AlertStore) -> None:
    store.write(alerts(20))
    high, _ = store.list_alerts(AlertFilter(min_severity=Severity.HIGH), limit=100)
    assert len(high) == 5 and {a["severity"] for a in high} == {"high"}
    assert len(store.list_alerts(AlertFilter(rule="other-rule"), limit=100)[0]) == 7
    assert len(store.list_alerts(AlertFilter(rule="Exec"), limit=100)[0]) == 20  # by name too
    assert len(store.list_alerts(AlertFilter(namespace="shop"), limit=100)[0]) == 10
    assert len(store.list_alerts(AlertFilter(user="mallory@example.com"), limit=100)[0]) == 20
    assert store.list_alerts(AlertFilter(user="alice"), limit=100)[0] == []
    since = datetime(2026, 11, 20, 10, 0, 5, tzinfo=UTC)
    until = datetime(2026, 11, 20, 10, 0, 7, tzinfo=UTC)
    window, _ = store.list_alerts(AlertFilter(since=since, until=until), limit=100)
    assert {a["time"] for a in window} == {"2026-11-20T10:00:05Z", "2026-11-20T10:00:06Z"}


def test_the_group_filter_lists_a_group_s_alerts_and_the_group(store: AlertStore) -> None:
    store.write(alerts(20))
    everything, _ = store.list_alerts(AlertFilter(), limit=100)
    group_id = everything[0]["group_id"]
    members = sorted(a["id"] for a in everything if a["group_id"] == group_id)
    assert 0 < len(members) < len(everything)  # the filter has something to leave out
    listed, _ = store.list_alerts(AlertFilter(group=group_id), limit=100)
    assert sorted(a["id"] for a in listed) == members
    groups, _ = store.list_groups(AlertFilter(group=group_id), limit=100)
    assert [g["id"] for g in groups] == [group_id]
    assert store.list_alerts(AlertFilter(group="no-such-group"), limit=100)[0] == []


def test_bad_cursor(store: AlertStore) -> None:
    with pytest.raises(CursorError):
        store.list_alerts(AlertFilter(), limit=1, cursor="not-a-cursor")


def test_alert_detail_keeps_the_redacted_event_and_quarantine_keeps_rejects(store: AlertStore) -> None:
    (one,) = alerts(1)
    store.write([one], [Rejected("f.jsonl:9", "missing auditID", {"verb": "get", "note": "Bearer abcdefghijkl"})])
    got = store.get_alert(one.id)
    assert got is not None and got["event"]["auditID"] == one.audit_id and got["rule_id"] == "other-rule"
    assert store.get_alert("nope") is None
    (q,) = store.quarantined()
    assert (q["origin"], q["reason"], q["payload_truncated"]) == ("f.jsonl:9", "missing auditID", False)
    assert "abcdefghijkl" not in q["payload"]
