"""Alert priority (api/ranking.py, GET /api/v1/alerts/priority): what is most likely an attack comes first."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.ranking import MAX_RANKED, Facts, by_priority, context_only
from api.store import AlertStore
from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from detectors.alerts import Alert, Severity, make_alert
from detectors.events import AuditEvent
from tests.support.client import TestClient
from tests.support.events import exec_event

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
FIRST_TIME = {"baseline": {"kind": "exec", "state": "new", "reasons": ["first time"]}}
SENSITIVE = {"baseline": {"kind": "exec", "state": "habit", "reasons": ["sensitive"]}}


def alert(n: int, rule_id: str, user: str, severity: Severity, details: dict[str, Any] | None = None) -> Alert:
    """An alert on an exec event by `user`, `n` minutes after T0 (its auditID and id follow `n`)."""
    raw = copy.deepcopy(exec_event())
    raw["auditID"] = f"4c8e2a10-7f3b-4d9e-a1c5-{n:012d}"
    raw["stageTimestamp"] = (T0 + timedelta(minutes=n)).isoformat().replace("+00:00", "Z")
    raw["user"]["username"] = user
    return make_alert(rule_id=rule_id, rule_name=rule_id, severity=severity, mitre=(), message=rule_id,
                      event=AuditEvent(raw=raw), details=details)  # fmt: skip


def a_day() -> list[Alert]:
    """A day's alerts, earliest first: routine noise early, an intrusion by one stolen identity later."""
    return [
        alert(1, "new-source-ip-for-principal", "dana@example.com", Severity.MEDIUM, FIRST_TIME),
        alert(2, "pod-exec-attach", "erin@example.com", Severity.MEDIUM, FIRST_TIME),
        alert(3, "auth-failure-burst-by-ip", "", Severity.MEDIUM),
        alert(4, "secret-read-by-non-controller", "ci@example.com", Severity.INFO),
        alert(5, "new-source-ip-for-principal", "mallory@example.com", Severity.MEDIUM, FIRST_TIME),
        alert(6, "secrets-listed-cluster-wide", "mallory@example.com", Severity.MEDIUM),
        alert(7, "privileged-container", "mallory@example.com", Severity.HIGH),
        alert(8, "pod-exec-attach", "frank@example.com", Severity.MEDIUM, SENSITIVE),
    ]


def facts(a: Alert) -> Facts:
    principal = a.user or (a.source_ips[-1] if a.source_ips else "")
    return Facts(int(a.severity), a.rule_id, principal, a.event_time.timestamp(), context_only(a.details))


def test_corroborated_principal_first_then_what_events_do_before_first_seen_context_info_last() -> None:
    ranked = [a.rule_id + " " + a.user for a in by_priority(a_day(), facts)]
    assert ranked == [
        "privileged-container mallory@example.com",  # high, and three rules flag mallory
        "secrets-listed-cluster-wide mallory@example.com",  # medium raised: three rules flag mallory
        "new-source-ip-for-principal mallory@example.com",
        "auth-failure-burst-by-ip ",  # medium for what the events do (no baseline context)
        "pod-exec-attach frank@example.com",  # sensitive command: not just first-seen context
        "new-source-ip-for-principal dana@example.com",  # first-seen context, earliest first
        "pod-exec-attach erin@example.com",
        "secret-read-by-non-controller ci@example.com",  # info
    ]


def test_without_corroboration_severity_then_time_decides() -> None:
    day = [alert(1, "r1", "a@example.com", Severity.LOW), alert(2, "r2", "b@example.com", Severity.HIGH),
           alert(3, "r3", "c@example.com", Severity.HIGH)]  # fmt: skip
    assert [a.rule_id for a in by_priority(day, facts)] == ["r2", "r3", "r1"]


@pytest.mark.parametrize(
    ("details", "expected"),
    [(FIRST_TIME, True), ({"baseline": {"reasons": ["first time", "new network"]}}, True), (SENSITIVE, False),
     ({"baseline": {"reasons": ["first time", "sensitive"]}}, False), ({"baseline": {"reasons": []}}, False),
     ({}, False), ({"baseline": "garbled"}, False)],
)  # fmt: skip
def test_context_only_is_a_first_seen_term_or_network_and_nothing_else(details: Any, expected: bool) -> None:
    assert context_only(details) is expected


@pytest.fixture
def client(store: AlertStore) -> Iterator[TestClient]:
    store.write(a_day())
    with TestClient(create_serve_app(Settings(db_url=store.url)), raise_server_exceptions=False) as c:
        yield c


def test_the_priority_list_over_rest_is_the_ranking_and_filters_choose_the_period(client: TestClient) -> None:
    top = client.get("/api/v1/alerts/priority", params={"limit": 3})
    assert top.status_code == 200, top.text
    assert [a["rule_id"] for a in top.json()["items"]] == [
        "privileged-container", "secrets-listed-cluster-wide", "new-source-ip-for-principal",
    ]  # fmt: skip
    assert top.json()["items"][2]["user"] == "mallory@example.com" and top.json()["next_cursor"] is not None
    newest = client.get("/api/v1/alerts", params={"limit": 1}).json()["items"]
    assert newest[0]["rule_id"] == "pod-exec-attach"  # the plain list stays newest first
    before_intrusion = {"until": (T0 + timedelta(minutes=4, seconds=30)).isoformat()}
    early = client.get("/api/v1/alerts/priority", params=before_intrusion).json()["items"]
    assert [a["rule_id"] for a in early] == [
        "auth-failure-burst-by-ip", "new-source-ip-for-principal", "pod-exec-attach", "secret-read-by-non-controller",
    ]  # fmt: skip


def ids(page: dict[str, Any]) -> list[str]:
    return [a["id"] for a in page["items"]]


def test_priority_pages_follow_the_ranking_to_its_end(client: TestClient) -> None:
    whole = client.get("/api/v1/alerts/priority", params={"limit": 500}).json()
    assert len(whole["items"]) == whole["ranked"] == 8 and whole["complete"] is True
    assert whole["next_cursor"] is None
    paged: list[str] = []
    params: dict[str, Any] = {"limit": 3}
    for _ in range(4):  # 3 + 3 + 2
        page = client.get("/api/v1/alerts/priority", params=params).json()
        paged += ids(page)
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert paged == ids(whole)


@pytest.mark.parametrize("cursor", ["not-a-cursor", "eyJyYW5rZWRfZnJvbSI6LTF9", "eyJyYW5rZWRfZnJvbSI6IjMifQ"])
def test_a_cursor_that_is_not_a_priority_pages_is_a_400(client: TestClient, cursor: str) -> None:
    """Garbage, a negative offset ({"ranked_from":-1}), an offset that is not a number; and a list page's cursor."""
    answer = client.get("/api/v1/alerts/priority", params={"cursor": cursor})
    assert answer.status_code == 400 and "cursor" in answer.json()["detail"]
    list_cursor = client.get("/api/v1/alerts", params={"limit": 1}).json()["next_cursor"]
    assert client.get("/api/v1/alerts/priority", params={"cursor": list_cursor}).status_code == 400


def test_a_period_with_more_alerts_than_are_ranked_says_so(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("api.routes.MAX_RANKED", 5)
    page = client.get("/api/v1/alerts/priority").json()
    assert page["ranked"] == 5 and page["complete"] is False
    newest_five = {a["id"] for a in client.get("/api/v1/alerts", params={"limit": 5}).json()["items"]}
    assert set(ids(page)) == newest_five
    assert client.get("/api/v1/alerts/priority", params={"limit": 500}).json()["next_cursor"] is None


def test_the_openapi_description_names_the_ranked_limit_the_code_uses(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["RankedPage"]
    assert f"{MAX_RANKED:,} newest" in schema["properties"]["ranked"]["description"]
