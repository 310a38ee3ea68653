"""`auditwatch serve` as a real process: what a 200 promises survives `kill -9`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.credential_canaries import CANARIES, planted_exec, planted_secret
from tests.support.events import batch_of_400, event_list
from tests.support.problems import problem_detail
from tests.support.processes import Proc, free_port
from tests.support.stateful import HEADER, NEW_TERMS, SEQUENCE, at, denied_secret_get, grant, workload

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
    assert rules == [
        "cluster-admin-binding",
        "exec-credential-file-access",
        "exec-shell-command-payload",
        "pod-exec-attach",
        "privileged-container",
        "untrusted-image-registry",
    ]


def test_malformed_json_is_refused_and_the_server_stays_up(server: tuple[Proc, str, Path]) -> None:
    proc, base, _ = server
    resp = httpx.post(f"{base}/audit/webhook", content=b'{"items": [', timeout=10)
    assert "malformed JSON" in problem_detail(resp, 400)
    assert proc.popen.poll() is None
    ok = httpx.post(f"{base}/audit/webhook", content=event_list(batch_of_400()[:10]), timeout=10)
    assert ok.status_code == 200
    page = httpx.get(f"{base}/api/v1/alerts?limit=1", timeout=10).json()
    assert set(page) == {"items", "next_cursor"}
    assert httpx.get(f"{base}/docs", timeout=10).status_code == 200


def test_stateful_detectors_keep_their_state_across_a_restart(tmp_path: Path) -> None:
    """A sequence started before a restart completes after it; a learned baseline raises no first-seen burst."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "grant-then-deploy.yaml").write_text(
        HEADER.format(id="grant-then-deploy", name="Grant then deploy") + SEQUENCE
    )
    (rules / "new-ua.yaml").write_text(
        HEADER.format(id="new-ua", name="New UA") + NEW_TERMS.replace("learning: 7d", "learning: 1h")
    )
    db = tmp_path / "state.db"
    port = free_port()
    args = ["serve", "--port", str(port), "--db", f"sqlite:///{db}", "--rules", str(rules)]
    base = f"http://127.0.0.1:{port}"
    secret = denied_secret_get()

    def post(events: list[dict[str, object]]) -> int:
        resp = httpx.post(f"{base}/audit/webhook", content=event_list(events), timeout=30)
        assert resp.status_code == 200, resp.text
        return int(resp.json()["alerts"])

    first = Proc(args, tmp_path / "serve-1.log")
    try:
        first.wait_http(f"{base}/readyz")
        assert post([at(secret, 0, n=1), at(secret, 60, n=2, userAgent="k9s/v0.32.5")]) == 0  # learning
        assert post([at(grant(), 7200, n=3)]) == 0  # step 1 of the sequence
        assert first.stop() in (0, -15)  # SIGTERM, graceful (uvicorn re-raises it): state checkpointed on shutdown
    finally:
        first.kill9()
    second = Proc(args, tmp_path / "serve-2.log")
    try:
        second.wait_http(f"{base}/readyz")
        assert post([at(secret, 7300, n=4), at(secret, 7301, n=5, userAgent="k9s/v0.32.5")]) == 0  # known, no burst
        assert post([at(workload(), 7260, n=6)]) == 1  # step 2 completes the sequence begun before the restart
        assert post([at(secret, 7400, n=7, userAgent="curl/8.5.0")]) == 1  # genuinely new
    finally:
        second.kill9()
    with sqlite3.connect(db) as conn:
        assert sorted(r for (r,) in conn.execute("select rule_id from alerts")) == ["grant-then-deploy", "new-ua"]


def test_an_item_orjson_cannot_read_is_rejected_alone_its_batch_detected(
    server: tuple[Proc, str, Path],
) -> None:
    """A number beyond a double, an invalid UTF-8 byte or nesting past every reader's depth in one item (a client's
    PATCH body, which the apiserver logs as it came) costs that item only: the rest of the batch is detected and stored, the item is quarantined
    with its reason and redacted, and nothing of its credentials is answered, listed, logged or stored."""
    proc, base, db = server
    patch = planted_secret()
    patch.update(verb="patch", auditID="6b2e1d4f-0000-4d2f-8b66-00000000e400")
    patch["requestObject"] = {"data": {"k": CANARIES["secret-data"]}, "replicas": "HUGE-NUMBER"}
    exec_ = planted_exec()
    exec_["userAgent"] += " NOT-UTF-8"
    deep = planted_secret()  # nested past what orjson (1,024 levels) and Python's json module read
    deep.update(verb="patch", auditID="6b2e1d4f-0000-4d2f-8b66-00000000dee9")
    deep["requestObject"] = {"data": {"k": CANARIES["secret-data"]}, "v": "DEEP"}
    body = event_list([*batch_of_400(), patch, exec_, deep])
    body = body.replace(b'"HUGE-NUMBER"', b"1e400").replace(b" NOT-UTF-8", b" \xff")
    body = body.replace(b'"DEEP"', b"[" * 3000 + b"]" * 3000)
    resp = httpx.post(f"{base}/audit/webhook", content=body, timeout=30)
    assert resp.status_code == 200, resp.text
    reply = resp.json()
    assert (reply["accepted"], reply["rejected"], reply["quarantined"], reply["new_alerts"]) == (400, 3, 3, 6)
    reasons = [r["reason"] for r in reply["rejections"]]
    assert reasons[0].startswith("malformed JSON: number is infinity when parsed as double at line 1 column")
    assert reasons[1].startswith("invalid UTF-8 at byte ")
    assert reasons[2] == "nested deeper than 100 levels"
    with sqlite3.connect(db) as conn:
        rules = sorted(r for (r,) in conn.execute("select rule_id from alerts"))
    assert len(rules) == 6 and "cluster-admin-binding" in rules
    quarantine = httpx.get(f"{base}/api/v1/quarantine", timeout=10).json()["items"]
    assert sorted(q["reason"] for q in quarantine) == sorted(reasons)
    assert {q["origin"].rpartition("#")[2] for q in quarantine} == {"items[400]", "items[401]", "items[402]"}
    assert any("6b2e1d4f-0000-4d2f-8b66-00000000e400" in q["payload"] for q in quarantine)  # kept, redacted
    proc.stop()
    stored = b"".join(path.read_bytes() for path in db.parent.glob("serve.db*"))
    for canary in (CANARIES["secret-data"], CANARIES["ua-bearer"]):
        for where in (resp.text, str(quarantine), proc.output(), stored.decode(errors="replace")):
            assert canary not in where
