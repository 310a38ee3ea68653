"""Triage and exceptions over REST in `serve`: acknowledge, assign, annotate, resolve, filter, history, groups,
exceptions that silence future alerts, and the 4xx answers to what is not right."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from api.rule_exceptions import NewException
from api.store import AlertStore
from api.tables import exceptions_table
from auditwatch.server import create_api_app, create_serve_app
from auditwatch.settings import Settings
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.client import TestClient
from tests.support.events import another_like, event_list, exec_event
from tests.support.problems import problem_detail


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(load_rules(["builtin"]))


@pytest.fixture
def client(db_url: str, pipeline: Pipeline) -> Iterator[TestClient]:
    app = create_serve_app(Settings(db_url=db_url, exceptions_refresh_s=0.2), pipeline=pipeline.fresh())
    with TestClient(app) as c:
        yield c


def post(client: TestClient, *events: dict[str, Any]) -> dict[str, Any]:
    resp = client.post("/audit/webhook", content=event_list(list(events)))
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


def exec_alert(client: TestClient) -> dict[str, Any]:
    post(client, exec_event())
    (alert,) = client.get("/api/v1/alerts?rule=pod-exec-attach").json()["items"]
    return alert  # type: ignore[no-any-return]


def test_acknowledge_assign_annotate_resolve_and_find_by_status(client: TestClient) -> None:
    alert = exec_alert(client)
    assert (alert["status"], alert["assignee"]) == ("open", None)
    url = f"/api/v1/alerts/{alert['id']}"
    ack = client.patch(url, json={"status": "acknowledged", "assignee": "bob@example.com"},
                       headers={"X-Auditwatch-User": "ann"})  # fmt: skip
    assert ack.status_code == 200 and (ack.json()["status"], ack.json()["assignee"]) == (
        "acknowledged",
        "bob@example.com",
    )
    note = client.patch(url, json={"note": "  exec by a contractor, asking them  ", "author": "bob"})
    assert [(n["author"], n["text"]) for n in note.json()["notes"]] == [("bob", "exec by a contractor, asking them")]
    assert (
        client.get("/api/v1/alerts?status=acknowledged&assignee=bob@example.com").json()["items"][0]["id"]
        == alert["id"]
    )
    assert client.get("/api/v1/alerts?status=open,resolved&rule=pod-exec-attach").json()["items"] == []
    done = client.patch(url, json={"status": "resolved"}).json()
    assert done["status"] == "resolved" and done["event"]["auditID"] == alert["audit_id"]
    assert [a["id"] for a in client.get("/api/v1/alerts?status=resolved").json()["items"]] == [alert["id"]]
    assert client.get(url).json()["notes"][0]["text"] == "exec by a contractor, asking them"
    history = client.get(f"{url}/history").json()["items"]
    assert [(h["author"], h["field"], h["old"], h["new"]) for h in history] == [
        ("ann", "status", "open", "acknowledged"),
        ("ann", "assignee", None, "bob@example.com"),
        ("bob", "note", None, "exec by a contractor, asking them"),
        ("anonymous", "status", "acknowledged", "resolved"),
    ]
    assert all(datetime.fromisoformat(h["at"]) <= datetime.now(UTC) for h in history)


def test_a_redelivered_batch_does_not_reopen_a_triaged_alert(client: TestClient) -> None:
    alert = exec_alert(client)
    client.patch(f"/api/v1/alerts/{alert['id']}", json={"status": "resolved", "assignee": "ann"})
    post(client, exec_event())  # the apiserver retried the batch
    again = client.get(f"/api/v1/alerts/{alert['id']}").json()
    assert (again["status"], again["assignee"]) == ("resolved", "ann")


def test_group_triage_over_rest(client: TestClient) -> None:
    post(client, exec_event(), another_like(exec_event(), 1), another_like(exec_event(), 2))
    (group,) = client.get("/api/v1/alert-groups?rule=pod-exec-attach").json()["items"]
    assert group["count"] == 3 and group["status"] == "open"
    url = f"/api/v1/alert-groups/{group['id']}"
    resp = client.patch(url, json={"status": "false_positive", "assignee": "ann", "note": "pentest window"})
    assert resp.status_code == 200 and resp.json()["alerts_changed"] == 3
    assert [g["id"] for g in client.get("/api/v1/alert-groups?status=false_positive&assignee=ann").json()["items"]] == [
        group["id"]
    ]
    members = client.get("/api/v1/alerts?rule=pod-exec-attach&status=false_positive").json()["items"]
    assert len(members) == 3 and {m["assignee"] for m in members} == {"ann"}
    assert client.get(url).json()["notes"][0]["text"] == "pentest window"
    assert [h["field"] for h in client.get(f"{url}/history").json()["items"]] == ["status", "assignee", "note"]
    member_history = client.get(f"/api/v1/alerts/{members[0]['id']}/history").json()["items"]
    assert {h["via_group"] for h in member_history} == {group["id"]}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "nothing to change"),
        ({"status": "closed"}, "open"),
        ({"status": None}, "status cannot be null"),
        ({"note": " "}, "at least 1 character"),
        ({"note": "x" * 4001}, "at most 4000 characters"),
        ({"note": "a\x00b"}, "control characters"),
        ({"assignee": "bob\nsmith"}, "line breaks"),
        ({"assignee": "bob\u2028smith"}, "line breaks"),  # a line break to Python's splitlines, and to browsers
        ({"assignee": "bob\x85smith"}, "line breaks"),
        ({"note": "red \x9b31m alert"}, "control characters"),  # a C1 control: a terminal's CSI
        ({"assignee": "b" * 201}, "at most 200 characters"),
        ({"status": "resolved", "colour": "red"}, "Extra inputs are not permitted"),
        ({"status": "resolved", "create_exception": {}}, "create_exception goes with status false_positive"),
        ({"status": "false_positive", "create_exception": {"match": {"$nope": None}}}, "unknown virtual field"),
        ({"status": "false_positive", "create_exception": {"match": {"impersonatedUser.username": None}}},
         "has no value in the alert"),
        ({"status": "false_positive", "create_exception": {"expires_at": "2020-01-01T00:00:00Z"}}, "in the past"),
        ({"status": "false_positive", "create_exception": {"expires_at": "2099-01-01T00:00:00"}}, "timezone"),
        ({"status": "false_positive", "create_exception": {"expires_at": "9999-12-31T23:00:00-05:00"}}, "out of range"),
        ({"status": "false_positive", "create_exception": {"expires_at": "2200-01-01T00:00:00Z"}}, "out of range"),
    ],
)  # fmt: skip
def test_bad_triage_requests_get_422_saying_why(client: TestClient, body: dict[str, Any], needle: str) -> None:
    alert = exec_alert(client)
    resp = client.patch(f"/api/v1/alerts/{alert['id']}", json=body)
    assert resp.status_code == 422 and needle in resp.text, resp.text
    assert client.get(f"/api/v1/alerts/{alert['id']}").json()["status"] == "open"  # nothing changed
    assert client.get("/api/v1/exceptions").json()["items"] == []


def test_unknown_ids_bad_filters_and_bad_author_headers(client: TestClient) -> None:
    alert = exec_alert(client)
    assert client.patch("/api/v1/alerts/nope", json={"status": "resolved"}).status_code == 404
    assert client.patch("/api/v1/alert-groups/nope", json={"status": "resolved"}).status_code == 404
    assert client.get("/api/v1/alerts/nope/history").status_code == 404
    assert client.get("/api/v1/alert-groups/nope/history").status_code == 404
    assert client.get("/api/v1/alert-groups/nope").status_code == 404
    assert client.get("/api/v1/exceptions/nope").status_code == 404
    assert client.delete("/api/v1/exceptions/nope").status_code == 404
    assert client.get(f"/api/v1/alerts/{alert['id']}/history").json() == {"items": []}
    bad = client.get("/api/v1/alerts?status=open,closed")
    assert problem_detail(bad, 422).startswith("query.status: each must be one of open, ") and "closed" not in bad.text
    header = client.patch(f"/api/v1/alerts/{alert['id']}", json={"status": "resolved"},
                          headers={"X-Auditwatch-User": "x" * 201})  # fmt: skip
    assert header.status_code == 422 and "X-Auditwatch-User" in header.text
    for sent in ("Zoë Ψ".encode(), "Zoë".encode("latin-1")):  # UTF-8 as curl sends it; Latin-1 bytes stay Latin-1
        noted = client.patch(f"/api/v1/alerts/{alert['id']}", json={"note": "n"}, headers={"X-Auditwatch-User": sent})
        assert noted.json()["notes"][-1]["author"] in ("Zoë Ψ", "Zoë"), noted.text
    assert [n["author"] for n in noted.json()["notes"]] == ["Zoë Ψ", "Zoë"]


def test_a_false_positive_with_an_exception_silences_future_alerts_of_its_kind(client: TestClient) -> None:
    alert = exec_alert(client)
    resp = client.patch(f"/api/v1/alerts/{alert['id']}", json={
        "status": "false_positive", "author": "ann",
        "create_exception": {"comment": "mallory runs the nightly smoke test"},
    })  # fmt: skip
    assert resp.status_code == 200, resp.text
    exception = resp.json()["exception"]
    assert exception["rule_id"] == "pod-exec-attach" and exception["author"] == "ann"
    assert exception["match"]["user.username"] == ["mallory@example.com"] and exception["hits"] == 0
    before = post(client, another_like(exec_event(), 1))  # a new event of the same kind
    assert "pod-exec-attach" not in {
        a["rule_id"] for a in client.get("/api/v1/alerts?since=2026-11-20T10:01:00Z").json()["items"]
    }
    assert before["alerts"] == 2  # the event's other rules still alert
    post(client, another_like(exec_event(), 2))
    (listed,) = client.get("/api/v1/exceptions").json()["items"]
    assert listed["id"] == exception["id"] and listed["hits"] == 2 and listed["last_hit"] is not None
    assert listed["active"] is True
    assert client.delete(f"/api/v1/exceptions/{exception['id']}").status_code == 204
    post(client, another_like(exec_event(), 3))  # deleted: alerts again, at once
    assert len(client.get("/api/v1/alerts?rule=pod-exec-attach").json()["items"]) == 2


def test_exceptions_crud_over_rest(client: TestClient) -> None:
    alert = exec_alert(client)
    created = client.post("/api/v1/exceptions", headers={"X-Auditwatch-User": "ann"}, json={
        "rule_id": "privileged-container", "match": {"$containers[*].image": ["registry.corp/agents/*"],
                                                     "objectRef.namespace": "kube-system"},
        "comment": "CNI agents", "expires_at": "2099-01-01T00:00:00Z",
    })  # fmt: skip
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["match"] == {"$containers[*].image": ["registry.corp/agents/*"], "objectRef.namespace": ["kube-system"]}
    assert (body["author"], body["expires_at"], body["from_alert"]) == ("ann", "2099-01-01T00:00:00Z", None)
    from_alert = client.post("/api/v1/exceptions", json={"from_alert": alert["id"], "match": {"user.username": None}})
    assert from_alert.status_code == 201 and from_alert.json()["match"] == {"user.username": ["mallory@example.com"]}
    assert from_alert.json()["author"] == "anonymous"
    assert len(client.get("/api/v1/exceptions").json()["items"]) == 2
    assert [e["id"] for e in client.get("/api/v1/exceptions?rule=privileged-container").json()["items"]] == [body["id"]]
    assert client.get(f"/api/v1/exceptions/{body['id']}").json() == body
    assert client.delete(f"/api/v1/exceptions/{body['id']}").status_code == 204
    assert client.get(f"/api/v1/exceptions/{body['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"match": {"verb": "get"}}, "rule_id is required"),
        ({"rule_id": "r"}, "at least one field condition"),
        ({"rule_id": "r", "match": {"verb": []}}, "at least 1 item"),
        ({"rule_id": "r", "match": {"verb": None}}, "need from_alert"),
        ({"rule_id": "r", "match": {"a..b": "x"}}, "bad field path"),
        ({"rule_id": "r", "match": {f"f{i}": "x" for i in range(21)}}, "at most 20 items"),
        ({"rule_id": "r", "match": {"verb": ["x"] * 51}}, "at most 50 items"),
        ({"from_alert": "nope"}, "from_alert: no alert has this id"),
        ({"from_alert": "a\x00b"}, "body.from_alert: Value error, control characters"),
        ({"rule_id": "r", "match": {"verb": "get"}, "expires_at": "yesterday"}, "datetime"),
        ({"rule_id": "r", "match": {"verb": "get"}, "expires_at": "9999-12-31T23:00:00-05:00"}, "out of range"),
        ({"rule_id": "r", "match": {"verb": "get"}, "hits": 5}, "Extra inputs are not permitted"),
    ],
)
def test_bad_exceptions_get_422_saying_why(client: TestClient, body: dict[str, Any], needle: str) -> None:
    resp = client.post("/api/v1/exceptions", json=body)
    assert resp.status_code == 422 and needle in resp.text, resp.text


def test_a_nul_in_from_alert_is_a_422_over_postgresql_not_a_503(pg_url: str) -> None:
    """PostgreSQL refuses a NUL in a lookup: it must be refused before, not answered 'store unavailable'."""
    with TestClient(create_api_app(Settings(db_url=pg_url))) as client:
        resp = client.post("/api/v1/exceptions", json={"from_alert": "a\x00b"})
        assert problem_detail(resp, 422).startswith("body.from_alert: ")


def test_an_exceptions_422_names_the_field_not_the_value_sent(client: TestClient) -> None:
    alert = exec_alert(client)
    secret = "s3cret-ab12cd34"
    for body in ({"from_alert": secret}, {"from_alert": alert["id"], "rule_id": secret}):
        resp = client.post("/api/v1/exceptions", json=body)
        detail = problem_detail(resp, 422)
        assert detail.startswith(next(iter(reversed(body))) + ": ") and secret not in resp.text, resp.text


def test_serve_picks_up_exceptions_made_elsewhere_within_its_refresh_interval(client: TestClient, db_url: str) -> None:
    exec_alert(client)
    other = AlertStore(db_url)  # another process on the same database: `auditwatch api`, another replica
    try:
        other.create_exception(NewException(author="ann", rule_id="pod-exec-attach",
                                            match={"user.username": ["mallory@*"]}))  # fmt: skip
    finally:
        other.close()
    time.sleep(0.3)  # the client's refresh interval is 0.2 s
    post(client, another_like(exec_event(), 1))
    assert len(client.get("/api/v1/alerts?rule=pod-exec-attach").json()["items"]) == 1
    assert client.get("/api/v1/exceptions").json()["items"][0]["hits"] == 1


def test_an_expired_exception_no_longer_silences(client: TestClient, db_url: str) -> None:
    exec_alert(client)
    made = client.post("/api/v1/exceptions", json={"rule_id": "pod-exec-attach", "match": {"verb": "create"},
                                                  "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})  # fmt: skip
    post(client, another_like(exec_event(), 1))
    assert len(client.get("/api/v1/alerts?rule=pod-exec-attach").json()["items"]) == 1
    store: AlertStore = client.app.state.store  # type: ignore[attr-defined]
    with store.engine.begin() as conn:  # an hour later
        conn.execute(update(exceptions_table).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    time.sleep(0.3)
    post(client, another_like(exec_event(), 2))
    assert len(client.get("/api/v1/alerts?rule=pod-exec-attach").json()["items"]) == 2
    assert client.get(f"/api/v1/exceptions/{made.json()['id']}").json()["active"] is False


def test_openapi_documents_the_new_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/api/v1/alerts/{alert_id}"]) == {"get", "patch"}
    assert set(paths["/api/v1/alert-groups/{group_id}"]) == {"get", "patch"}
    assert set(paths["/api/v1/exceptions"]) == {"get", "post"}
    assert set(paths["/api/v1/exceptions/{exception_id}"]) == {"get", "delete"}
    assert "history" in paths["/api/v1/alerts/{alert_id}/history"]["get"]["summary"].lower()
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"TriagePatch", "ExceptionCreate", "RuleException", "History", "TriagedAlert"} <= set(schemas)
