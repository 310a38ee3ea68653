"""`auditwatch serve` as a real process: what a 200 promises survives `kill -9`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import Proc, free_port
from tests.test_webhook import batch_of_400, event_list

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Proc, str, Path]]:
    db = tmp_path / "serve.db"
    port = free_port()
    proc = Proc(["serve", "--port", str(port), "--db", f"sqlite:///{db}"], tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{base}/readyz")
        yield proc, base, db
    finally:
        proc.kill9()


def test_kill_9_right_after_200_loses_nothing(server: tuple[Proc, str, Path]) -> None:
    proc, base, db = server
    resp = httpx.post(f"{base}/audit/webhook?timeout=30s", content=event_list(batch_of_400()), timeout=30)
    assert resp.status_code == 200
    proc.kill9()  # no shutdown hook gets to run
    with sqlite3.connect(db) as conn:
        rules = sorted(r for (r,) in conn.execute("select rule_id from alerts"))
    assert rules == ["cluster-admin-binding", "pod-exec-attach", "privileged-container"]


def test_malformed_json_is_refused_and_the_server_stays_up(server: tuple[Proc, str, Path]) -> None:
    proc, base, _ = server
    resp = httpx.post(f"{base}/audit/webhook", content=b'{"items": [', timeout=10)
    assert resp.status_code == 400 and "malformed JSON" in resp.json()["error"]
    assert proc.popen.poll() is None
    ok = httpx.post(f"{base}/audit/webhook", content=event_list(batch_of_400()[:10]), timeout=10)
    assert ok.status_code == 200
    page = httpx.get(f"{base}/api/v1/alerts?limit=1", timeout=10).json()
    assert set(page) == {"items", "next_cursor"}
    assert httpx.get(f"{base}/docs", timeout=10).status_code == 200
