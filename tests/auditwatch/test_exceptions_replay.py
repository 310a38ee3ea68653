"""An exception made from a false positive over REST silences the same event when `auditwatch replay --db` runs
the file again, and new events of its kind, on SQLite and PostgreSQL; it is counted, and listed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from api.queries import AlertFilter
from api.store import AlertStore
from auditwatch.server import create_api_app
from auditwatch.settings import Settings
from tests.support.cli import RunCli
from tests.support.client import TestClient
from tests.support.events import another_like, exec_event


def write_log(path: Path, *events: dict[str, Any]) -> str:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return str(path)


def exec_alerts(store: AlertStore) -> list[dict[str, Any]]:
    return store.list_alerts(AlertFilter(rule="pod-exec-attach"), limit=100)[0]


def test_replaying_a_false_positive_again_is_silenced_and_counted(
    store: AlertStore, tmp_path: Path, run_cli: RunCli
) -> None:
    log = write_log(tmp_path / "audit.log", exec_event())
    first = run_cli("replay", log, "--db", store.url)
    assert first.code == 0 and "alerts: 3 (3 new in the store)" in first.err, first.err
    (alert,) = exec_alerts(store)
    with TestClient(create_api_app(Settings(db_url=store.url))) as api:
        resp = api.patch(f"/api/v1/alerts/{alert['id']}", headers={"X-Auditwatch-User": "ann"}, json={
            "status": "false_positive", "note": "mallory's smoke test", "create_exception": {"comment": "smoke test"},
        })  # fmt: skip
        assert resp.status_code == 200, resp.text
        exception_id = resp.json()["exception"]["id"]

        again = run_cli("replay", log, "--db", store.url)
        assert again.code == 0 and "alerts: 2 (0 new in the store); 1 suppressed by rule exceptions" in again.err
        fresh = run_cli("replay", write_log(tmp_path / "later.log", another_like(exec_event(), 5)), "--db", store.url,
                        "--output", "-")  # fmt: skip
        assert fresh.code == 0 and "1 suppressed by rule exceptions" in fresh.err
        printed = [orjson.loads(line)["rule_id"] for line in fresh.out.splitlines()]
        assert len(printed) == 2 and "pod-exec-attach" not in printed  # neither stored nor printed

        (listed,) = api.get("/api/v1/exceptions").json()["items"]
        assert listed["id"] == exception_id and listed["hits"] == 2 and listed["last_hit"] is not None
    assert [(a["id"], a["status"]) for a in exec_alerts(store)] == [(alert["id"], "false_positive")]


def test_a_deleted_exception_stops_silencing_the_next_replay(
    store: AlertStore, tmp_path: Path, run_cli: RunCli
) -> None:
    log = write_log(tmp_path / "audit.log", exec_event())
    with TestClient(create_api_app(Settings(db_url=store.url))) as api:
        made = api.post("/api/v1/exceptions", json={"rule_id": "pod-exec-attach",
                                                     "match": {"user.username": "mallory@example.com"}})  # fmt: skip
        assert made.status_code == 201, made.text
        silenced = run_cli("replay", log, "--db", store.url)
        assert "alerts: 2 (2 new in the store); 1 suppressed" in silenced.err and exec_alerts(store) == []
        assert api.delete(f"/api/v1/exceptions/{made.json()['id']}").status_code == 204
    loud = run_cli("replay", log, "--db", store.url)
    assert "alerts: 3 (1 new in the store)" in loud.err and "suppressed" not in loud.err
    assert len(exec_alerts(store)) == 1
