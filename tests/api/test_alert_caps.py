"""An event with over-long values (a 3 MB username, a long user agent and object name, thousands of groups)
through the real path (webhook -> detection -> store -> REST), on SQLite and PostgreSQL: every alert column
and group column taken from the event is capped with a visible mark, the alert ids are those of the event,
and the REST answers stay bounded."""

from __future__ import annotations

import random
import string
from typing import Any

import orjson
import sqlalchemy as sa

from api.store import AlertStore
from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from detectors.alerts import alert_id
from detectors.events import AuditEvent
from detectors.limits import (
    MAX_ALERT_FIELD_BYTES,
    MAX_ALERT_ITEMS,
    MAX_ALERT_TEXT_BYTES,
    MAX_EVENT_BYTES,
    MAX_GROUP_KEY_BYTES,
    MAX_STORED_EVENT_BYTES,
)
from tests.support.client import TestClient
from tests.support.events import event_list, exec_event

MB = 1_000_000


def noise(size: int, seed: int) -> str:
    """Letters that do not compress: PostgreSQL indexes them as they are (its btree entries stop at 2704 bytes)."""
    return "".join(random.Random(seed).choices(string.ascii_letters, k=size))


def hostile_event() -> dict[str, Any]:
    event = exec_event()
    event["user"] = {"username": noise(3 * MB, 1), "groups": [f"team-{i}" for i in range(5000)]}
    event["impersonatedUser"] = {"username": "é" * 300_000}  # 2 bytes a character in UTF-8
    event["userAgent"] = "kubectl/" + noise(MB, 2)
    event["sourceIPs"] = [f"10.0.{i // 250}.{i % 250}" for i in range(1000)]
    event["objectRef"] = {**event["objectRef"], "name": noise(200_000, 3)}
    assert len(orjson.dumps(event)) <= MAX_EVENT_BYTES
    return event


def size(value: Any) -> int:
    return len(value.encode()) if isinstance(value, str) else len(orjson.dumps(value))


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings_in(k), *strings_in(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def check_alert(alert: dict[str, Any]) -> None:
    for key in ("user", "impersonated_user", "user_agent", "name", "audit_id", "namespace", "verb", "resource"):
        assert size(alert[key]) <= MAX_ALERT_FIELD_BYTES, key
    for key in ("user", "impersonated_user", "user_agent", "name"):
        assert "…<truncated " in alert[key] and alert[key].endswith(" bytes>"), key
    assert alert["user"].startswith(hostile_event()["user"]["username"][:1000])
    assert size(alert["message"]) <= MAX_ALERT_TEXT_BYTES
    for key in ("groups", "source_ips"):
        assert len(alert[key]) == MAX_ALERT_ITEMS + 1 and alert[key][-1].startswith("…<truncated "), key
    assert all(size(s) <= MAX_ALERT_TEXT_BYTES for s in strings_in(alert["details"]))
    assert size(alert["details"]) < 64 * 1024


def test_over_long_event_values_are_capped_in_every_column_and_answer(store: AlertStore) -> None:
    raw = hostile_event()
    settings = Settings(db_url=store.url, rules=["builtin", "falco", "sigma"], rule_matching="all")
    with TestClient(create_serve_app(settings)) as client:
        resp = client.post("/audit/webhook", content=event_list([raw]))
        assert resp.status_code == 200 and resp.json()["accepted"] == 1, resp.text
        listed = client.get("/api/v1/alerts", params={"limit": 500})
        assert listed.status_code == 200
        alerts = listed.json()["items"]
        assert {"pod-exec-attach", "falco:attach-exec-pod"} <= {a["rule_id"] for a in alerts}
        assert len(listed.content) < len(alerts) * 64 * 1024
        for alert in alerts:
            check_alert(alert)
            assert alert["id"] == alert_id(alert["rule_id"], AuditEvent(raw))  # ids as before: from the event
            detail = client.get(f"/api/v1/alerts/{alert['id']}")
            assert detail.status_code == 200
            check_alert(detail.json())
            assert size(detail.json()["event"]) <= MAX_STORED_EVENT_BYTES
            assert len(detail.content) < MAX_STORED_EVENT_BYTES + 64 * 1024
        groups = client.get("/api/v1/alert-groups", params={"limit": 500}).json()["items"]
        assert groups and all(size(g["user"]) <= MAX_ALERT_FIELD_BYTES for g in groups)
        assert all(size(g["last_message"]) <= MAX_ALERT_TEXT_BYTES for g in groups)
    with store.engine.connect() as conn:  # every stored text, as the database has it
        rows = conn.execute(sa.text("SELECT user_name, impersonated_user, user_agent, name, message FROM alerts"))
        for user, impersonated, agent, name, message in rows:
            assert max(size(user), size(impersonated), size(agent), size(name)) <= MAX_ALERT_FIELD_BYTES
            assert size(message) <= MAX_ALERT_TEXT_BYTES
        for key, user in conn.execute(sa.text("SELECT group_key, user_name FROM alert_groups")):
            assert size(key) <= MAX_GROUP_KEY_BYTES + 8 and size(user) <= MAX_ALERT_FIELD_BYTES
