"""No planted credential survives the real path: webhook -> detection (built-in, Falco, Sigma) -> store -> REST.

After the POSTs, neither the database (SQLite: the file and its WAL; PostgreSQL: every column of every table)
nor any response (the webhook's, alerts, alert details, alert groups, receipts) holds a planted secret; the
values that only look related (references, images, annotation names) are still there, and the rules fired.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from api.queries import AlertFilter
from api.store import AlertStore
from auditwatch.embedded import STATE_SCOPE
from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from detectors.events import AuditEvent
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.client import TestClient
from tests.support.credential_canaries import CANARIES, KEPT, planted_events, quarantined_items
from tests.support.events import event_list
from tests.support.problems import problem_detail

EXPECTED_RULES = {
    "pod-exec-attach", "falco:attach-exec-pod", "privileged-container", "untrusted-image-registry",
    "configmap-with-credentials", "secret-modified", "falco:k8s-secret-created", "serviceaccount-token-minted",
    "anonymous-request-allowed", "falco:anonymous-request-allowed",
}  # fmt: skip


def leaked(text: str) -> list[str]:
    return [name for name, value in CANARIES.items() if value in text]


def exercise(db_url: str) -> str:
    """Post the planted batch and a body the webhook refuses; return every response body, concatenated."""
    settings = Settings(db_url=db_url, rules=["builtin", "falco", "sigma"], rule_matching="all", record_receipts=True)
    seen: list[str] = []
    with TestClient(create_serve_app(settings)) as client:
        resp = client.post("/audit/webhook", content=event_list(planted_events() + quarantined_items()))
        assert resp.status_code == 200, resp.text
        assert (resp.json()["accepted"], resp.json()["rejected"]) == (6, 3)
        seen.append(resp.text)
        refused = client.post("/audit/webhook", content=b'{"kind": "Bearer %s"}' % CANARIES["error-400"].encode())
        assert "Bearer <redacted>" in problem_detail(refused, 400)
        seen.append(refused.text)
        alerts = get_all(client, "/api/v1/alerts")
        assert EXPECTED_RULES <= {a["rule_id"] for a in alerts}
        for alert in alerts:
            seen.append(client.get(f"/api/v1/alerts/{alert['id']}").text)
        groups = get_all(client, "/api/v1/alert-groups")
        assert any("Bearer <redacted>" in g["last_message"] for g in groups)  # the user agent in a message
        for path in ("/api/v1/alerts", "/api/v1/alert-groups", "/api/v1/receipts"):
            seen += [str(item) for item in get_all(client, path)]
            seen.append(client.get(path, params={"limit": 500}).text)
    return "\n".join(seen)  # the app is shut down: its detector state is checkpointed


def get_all(client: TestClient, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.get(path, params={"limit": 50, **({"cursor": cursor} if cursor else {})}).json()
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def check_responses(responses: str) -> None:
    assert leaked(responses) == []
    for value in KEPT:
        assert value in responses, value
    assert "<redacted>" in responses


def test_sqlite_file_and_responses_hold_no_planted_credential(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    responses = exercise(f"sqlite:///{db}")
    check_responses(responses)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("alerts.db")]
    data = b"".join(p.read_bytes() for p in files)
    assert [n for n, v in CANARIES.items() if v.encode() in data] == []
    assert b"<redacted>" in data and b"docker.io/library/alpine:3.20" in data
    store = AlertStore(f"sqlite:///{db}")
    assert len(store.quarantined()) == 3
    saved = store.load_state(STATE_SCOPE)  # the detectors' state keeps user agents: redacted too
    assert saved is not None and "Bearer <redacted>" in str(saved[1])


def dump_postgres(url: str) -> str:
    """Every row of every table as JSON text (all columns)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = conn.scalars(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).all()
            assert {"alerts", "alert_groups", "quarantine"} <= set(tables)
            rows = [str(r) for t in tables for r in conn.scalars(sa.text(f'SELECT row_to_json(t)::text FROM "{t}" t'))]
    finally:
        engine.dispose()
    return "\n".join(rows)


def test_postgres_tables_and_responses_hold_no_planted_credential(pg_url: str) -> None:
    responses = exercise(pg_url)
    check_responses(responses)
    dump = dump_postgres(pg_url)
    assert leaked(dump) == []
    assert "<redacted>" in dump and "docker.io/library/alpine:3.20" in dump


def test_alert_group_last_message_is_the_redacted_message(db_url: str) -> None:
    raw = planted_events()[2]  # configmap-with-credentials: its message shows the user agent
    pipeline = Pipeline(load_rules(["builtin"]))
    (first,) = [a for a in pipeline.process(AuditEvent(raw=raw)) if a.rule_id == "configmap-with-credentials"]
    later = dict(raw, auditID="9e5b4a7c-7f3a-4a5c-9e99-4a4b5b6a7f80", stageTimestamp="2026-11-20T10:05:00Z",
                 userAgent=f"curl/8.5.0 token={CANARIES['ua-bearer']}")  # fmt: skip
    (second,) = [a for a in pipeline.process(AuditEvent(raw=later)) if a.rule_id == "configmap-with-credentials"]
    store = AlertStore(db_url)
    store.migrate()
    store.write([first, second])
    groups, _ = store.list_groups(AlertFilter(), limit=10)
    (group,) = [g for g in groups if g["rule_id"] == "configmap-with-credentials"]
    # a bare value runs to the next space: the template's closing parenthesis goes with it
    assert group["count"] == 2 and group["last_message"].endswith("(curl/8.5.0 token=<redacted>")
