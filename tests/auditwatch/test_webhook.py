"""The embedded webhook: status codes, durability contract, quarantine, REST visibility, auth."""

from __future__ import annotations

import copy
import gzip
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from api.store import AlertStore
from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from tests.support.client import TestClient
from tests.support.events import batch_of_400, event_list, exec_event, scenario_events
from tests.support.problems import problem_detail


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_serve_app(Settings(db_url=db_url, max_body_bytes=2 * 1024 * 1024))) as c:
        yield c


def test_400_event_batch_is_accepted_and_its_alerts_are_served(client: TestClient) -> None:
    resp = client.post(
        "/audit/webhook?timeout=30s", content=event_list(batch_of_400()), headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"accepted": 400, "rejected": 0, "alerts": 6, "new_alerts": 6}
    page = client.get("/api/v1/alerts").json()
    assert sorted(a["rule_id"] for a in page["items"]) == [
        "cluster-admin-binding",
        "exec-credential-file-access",
        "exec-shell-command-payload",
        "pod-exec-attach",
        "privileged-container",
        "untrusted-image-registry",
    ]
    assert page["next_cursor"] is None
    one = client.get(f"/api/v1/alerts/{page['items'][0]['id']}").json()
    assert one["event"]["auditID"] == one["audit_id"]


def test_falco_path_and_a_bare_event_array_work(client: TestClient) -> None:
    resp = client.post("/k8s-audit", content=orjson.dumps([exec_event()]))
    assert resp.status_code == 200
    assert resp.json()["alerts"] == 3


def test_a_gzipped_batch_gets_415_and_nothing_of_it_is_stored(client: TestClient) -> None:
    body = gzip.compress(event_list([exec_event()]))
    resp = client.post("/audit/webhook", content=body, headers={"Content-Encoding": "gzip"})
    assert problem_detail(resp, 415) == "Content-Encoding gzip is not supported: send the body uncompressed"
    assert client.get("/api/v1/alerts").json()["items"] == []


REFUSED_BROWSER = "audit events are not taken from web pages (the request has an Origin header)"


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://testserver"])
def test_a_batch_from_a_web_page_gets_403_and_nothing_of_it_is_stored(client: TestClient, origin: str) -> None:
    """A page can POST text/plain (or a typeless blob) to any address, and the browser adds Origin: on a listener
    without a token, that would let any site forge audit events. On both paths, before the body is read."""
    for path in ("/audit/webhook", "/k8s-audit"):
        headers = {"Origin": origin, "Content-Type": "text/plain;charset=UTF-8"}
        resp = client.post(path, content=event_list([exec_event()]), headers=headers)
        assert problem_detail(resp, 403) == REFUSED_BROWSER
    assert client.get("/api/v1/alerts").json()["items"] == []
    assert client.post("/audit/webhook", content=event_list([exec_event()])).json()["alerts"] == 3


def test_malformed_json_gets_400_naming_the_problem_and_server_stays_up(client: TestClient) -> None:
    resp = client.post("/audit/webhook", content=b'{"kind":"EventList","items":[{"auditID": }')
    detail = problem_detail(resp, 400)
    assert detail.startswith("malformed JSON: ")
    assert "line 1 column" in detail
    assert client.get("/healthz").status_code == 200
    assert client.post("/audit/webhook", content=event_list([exec_event()])).status_code == 200


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"kind": "PodList", "apiVersion": "v1", "items": []}, "kind 'PodList'"),
        ({"kind": "EventList", "apiVersion": "v1", "items": []}, "apiVersion 'v1'"),
        ({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": {"a": 1}}, "items must be a JSON array"),
        ({"hello": "world"}, "not an audit event"),
        (42, "got number"),
    ],
)
def test_wrong_kind_or_shape_gets_400(client: TestClient, body: Any, needle: str) -> None:
    resp = client.post("/audit/webhook", content=orjson.dumps(body))
    assert needle in problem_detail(resp, 400)


def test_body_over_the_limit_gets_413(client: TestClient) -> None:
    big = event_list([exec_event()] * 2000)
    assert len(big) > 2 * 1024 * 1024
    resp = client.post("/audit/webhook", content=big)
    assert "larger than the limit" in problem_detail(resp, 413)


def test_a_body_big_enough_to_be_parsed_in_a_thread_is_accepted_whole(client: TestClient) -> None:
    """Bodies over the inline size (1 MiB) are parsed off the event loop: every event still counts."""
    events = [exec_event() | {"auditID": f"big-{n}"} for n in range(1200)]
    body = event_list(events)
    assert 1024 * 1024 < len(body) < 2 * 1024 * 1024
    resp = client.post("/audit/webhook", content=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 1200 and resp.json()["rejected"] == 0


def test_other_methods_get_405(client: TestClient) -> None:
    for method in ("GET", "PUT", "DELETE"):
        assert client.request(method, "/audit/webhook").status_code == 405


def test_invalid_items_are_counted_quarantined_and_the_rest_processed(client: TestClient, db_url: str) -> None:
    good = exec_event()
    no_id = copy.deepcopy(good)
    del no_id["auditID"]
    bad_stage = copy.deepcopy(good)
    bad_stage["stage"] = "Sometime"
    resp = client.post("/audit/webhook", content=event_list([good, no_id, "junk", bad_stage]))
    assert resp.status_code == 200
    body = resp.json()
    assert (body["accepted"], body["rejected"], body["quarantined"], body["alerts"]) == (1, 3, 3, 3)
    reasons = {r["item"].split("#")[1]: r["reason"] for r in body["rejections"]}
    assert reasons["items[1]"] == "missing auditID"
    assert reasons["items[2]"] == "expected an Event object, got string"
    assert "stage 'Sometime'" in reasons["items[3]"]
    quarantined = AlertStore(db_url).quarantined()
    assert len(quarantined) == 3
    assert {q["reason"] for q in quarantined} == set(reasons.values())


def test_redelivered_batch_does_not_duplicate_alerts(client: TestClient) -> None:
    body = event_list(scenario_events())
    for _ in range(3):
        assert client.post("/audit/webhook", content=body).status_code == 200
    assert len(client.get("/api/v1/alerts").json()["items"]) == 6


def test_401_event_with_empty_user_is_accepted(client: TestClient) -> None:
    event = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": "6a1f0c2e-7b3d-4c5e-9f80-1a2b3c4d5e6f", "stage": "ResponseStarted",
        "requestURI": "/api/v1/namespaces/kube-system/secrets", "verb": "list", "user": {},
        "sourceIPs": ["198.51.100.9"], "userAgent": "curl/8.5.0",
        "responseStatus": {"metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401},
        "requestReceivedTimestamp": "2026-11-20T10:00:00.000001Z", "stageTimestamp": "2026-11-20T10:00:00.000420Z",
    }  # fmt: skip
    resp = client.post("/audit/webhook", content=event_list([event]))
    assert resp.json() == {"accepted": 1, "rejected": 0, "alerts": 0, "new_alerts": 0}


def test_token_auth_guards_webhook_and_api_but_not_probes(db_url: str) -> None:
    app = create_serve_app(Settings(db_url=db_url, api_token="s3cret-token-value"))
    with TestClient(app) as c:
        assert c.post("/audit/webhook", content=event_list([exec_event()])).status_code == 401
        assert c.get("/api/v1/alerts").status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert c.get("/api/v1/alerts", headers=wrong).status_code == 401
        ok = {"Authorization": "Bearer s3cret-token-value"}
        assert c.post("/audit/webhook", content=event_list([exec_event()]), headers=ok).status_code == 200
        assert len(c.get("/api/v1/alerts", headers=ok).json()["items"]) == 3
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200


def test_store_failure_answers_503_with_retry_after(client: TestClient) -> None:
    from sqlalchemy import create_engine

    store: AlertStore = client.app.state.store  # type: ignore[attr-defined]
    store.engine.dispose()
    store.engine = create_engine("sqlite:////nonexistent-dir/x.db")  # the database went away
    resp = client.post("/audit/webhook", content=event_list([exec_event()]))
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    assert client.get("/readyz").status_code == 503


def test_alert_groups_are_served_with_the_same_filters(client: TestClient) -> None:
    assert client.post("/audit/webhook", content=event_list(scenario_events())).status_code == 200
    alerts = client.get("/api/v1/alerts").json()["items"]
    groups = client.get("/api/v1/alert-groups").json()
    assert sum(g["count"] for g in groups["items"]) == len(alerts) and groups["next_cursor"] is None
    assert {g["rule_id"] for g in groups["items"]} == {a["rule_id"] for a in alerts}
    high = client.get("/api/v1/alert-groups?min_severity=high").json()["items"]
    assert high and all(g["severity"] in ("high", "critical") for g in high)
    assert client.get("/api/v1/alert-groups?namespace=nowhere").json()["items"] == []
    assert client.get("/api/v1/alert-groups?cursor=garbage").status_code == 400


def test_bad_query_parameters_are_refused_clearly(client: TestClient) -> None:
    for path in ("/api/v1/alerts", "/api/v1/alert-groups"):
        resp = client.get(f"{path}?min_severity=urgent")
        assert problem_detail(resp, 422).startswith("query.min_severity: must be one of ") and "urgent" not in resp.text
        assert client.get(f"{path}?limit=501").status_code == 422
        resp = client.get(f"{path}?since=yesterday")
        assert problem_detail(resp, 400).startswith("since: 'yesterday' is not a time")
    assert client.get("/api/v1/alerts/does-not-exist").status_code == 404
