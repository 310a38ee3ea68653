"""serve's webhook with items that break things: an event a detector fails on is quarantined and the rest of the
batch is stored; values no database takes (NUL characters) are stored, made storable. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.store import AlertStore
from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.rules import native
from tests.support.client import TestClient
from tests.support.events import event_list, find_event, scenario_events
from tests.support.poison import AppLabelRule, nul_event, poisoned_deployment


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'alerts.db'}"
        return
    from tests.support.services import PG_URL, fresh_database, require

    require(PG_URL.split("@", 1)[1].split("/", 1)[0], "PostgreSQL")
    yield from fresh_database(PG_URL)


@pytest.fixture
def user_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    monkeypatch.setitem(native.RULE_TYPES, "app-label", AppLabelRule.from_node)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "watched-app.yaml").write_text("id: watched-app\ntype: app-label\napps: [web]\n")
    return Pipeline(load_rules(["builtin", str(rules)]))


def test_a_detector_failing_on_one_event_quarantines_it_and_the_batch_goes_on(
    store_url: str, user_rules: Pipeline
) -> None:
    items = [*scenario_events(), poisoned_deployment()]
    poison_origin = f"#items[{len(items) - 1}]"
    with TestClient(create_serve_app(Settings(db_url=store_url), pipeline=user_rules)) as client:
        resp = client.post("/audit/webhook", content=event_list(items))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["accepted"], body["rejected"]) == (len(items) - 1, 1)
        (rejection,) = body["rejections"]
        assert rejection["item"].endswith(poison_origin)
        assert rejection["reason"] == "detector watched-app raised TypeError: unhashable type: 'list'"
        alerts = client.get("/api/v1/alerts?limit=500").json()["items"]
        by_rule = {(a["rule_id"], a["audit_id"]) for a in alerts}
        assert ("watched-app", find_web_pod()["auditID"]) in by_rule  # the user's rule works on the valid pod
        poison_alerts = {rule for rule, audit_id in by_rule if audit_id == items[-1]["auditID"]}
        assert "privileged-container" in poison_alerts  # the other detectors' alerts on the poison are kept
        assert body["alerts"] == len(alerts) == 6 + 1 + len(poison_alerts)
        store: AlertStore = client.app.state.store  # type: ignore[attr-defined]
        (quarantined,) = store.quarantined()
        assert quarantined["reason"] == rejection["reason"] and quarantined["origin"].endswith(poison_origin)
        again = client.post("/audit/webhook", content=event_list(items))  # a redelivery changes nothing
        assert again.status_code == 200 and again.json()["rejected"] == 0
        assert client.get("/api/v1/alerts?limit=500").json()["items"] == alerts
        assert len(store.quarantined()) == 1


def find_web_pod() -> dict[str, Any]:
    return find_event(
        lambda e: e.get("objectRef", {}).get("resource") == "pods" and e["verb"] == "create"
        and e["stage"] == "ResponseComplete" and e["user"]["username"].endswith("replicaset-controller")
    )  # fmt: skip


def test_nul_characters_anywhere_in_an_event_are_stored(store_url: str) -> None:
    with TestClient(create_serve_app(Settings(db_url=store_url, record_receipts=True))) as client:
        resp = client.post("/audit/webhook", content=event_list([nul_event()]))
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"accepted": 1, "rejected": 0, "alerts": 3, "new_alerts": 3}
        alerts = client.get("/api/v1/alerts").json()["items"]
        assert len(alerts) == 3 and all(a["user_agent"] == "kubectl/v1.31.2\ufffd (linux/amd64)" for a in alerts)
        one = client.get(f"/api/v1/alerts/{alerts[0]['id']}").json()
        assert "hidden\ufffdhere" in str(one["event"]["requestObject"]) and one["name"] == "web-7d9f8b6c5d\ufffd-x2x9k"
        assert client.get("/api/v1/receipts").json()["items"][0]["audit_id"] == "nul\ufffd-audit-id"
        groups = client.get("/api/v1/alert-groups").json()["items"]
        assert sum(g["count"] for g in groups) == 3 and all("\x00" not in g["last_message"] for g in groups)
