"""Notifications from real processes: `serve --notify alertmanager=... --notify webhook=...` with a real
Alertmanager and a local webhook receiver that goes down and comes back; `detect --notify` on Kafka and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.alertmanager import PrivateAlertmanager
from tests.support.events import event_list, exec_sessions
from tests.support.processes import Proc, free_port
from tests.support.receivers import Receiver, verify_signature
from tests.support.services import kafka_bootstrap

pytestmark = pytest.mark.integration
SECRET = b"process-test-hmac-key"


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, procs: list[Proc]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.args[0]}:\n{p.output()[-3000:]}" for p in procs)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{logs}")


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.kill9()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for receiver in started:
        receiver.stop()


def delivered_ids(hook: Receiver) -> list[str]:
    return [r.headers["x-auditwatch-delivery"] for r in hook.requests()]


def test_serve_notifies_alertmanager_and_a_webhook_that_goes_down_and_comes_back(
    tmp_path: Path, procs: list[Proc], receivers: list[Receiver]
) -> None:
    am_hook = Receiver().start()
    hook = Receiver().start()
    receivers += [am_hook, hook]
    am = PrivateAlertmanager(tmp_path / "am", am_hook.url)
    am.start()
    try:
        secret = tmp_path / "hmac"
        secret.write_bytes(SECRET)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        serve = Proc(["serve", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'serve.db'}",
                      "--notify", f"alertmanager={am.url},resend=2s",
                      "--notify", f"webhook={hook.url}/in,secret_file={secret},name=soc,backoff=200ms,backoff_max=1s"],
                     tmp_path / "serve.log")  # fmt: skip
        procs.append(serve)
        serve.wait_http(f"{base}/readyz")
        assert "notify   alertmanager:" in serve.output() and "notify   soc" in serve.output()

        def post(events: list[dict[str, Any]]) -> int:
            resp = httpx.post(f"{base}/audit/webhook", content=event_list(events), timeout=30)
            assert resp.status_code == 200, resp.text
            return int(resp.json()["alerts"])

        def alert_ids() -> set[str]:
            return {a["id"] for a in httpx.get(f"{base}/api/v1/alerts?limit=500", timeout=5).json()["items"]}

        started = time.monotonic()
        assert post(exec_sessions(2)) >= 2
        first = alert_ids()
        wait_for("the webhook receiver", lambda: set(delivered_ids(hook)) == first, 10, [serve])
        wait_for("Alertmanager", lambda: any(a["labels"]["alertname"] == "pod-exec-attach" for a in am.alerts()),
                 10, [serve])  # fmt: skip
        assert time.monotonic() - started < 10  # within seconds
        assert all(verify_signature(r, SECRET) and r.path == "/in" for r in hook.requests())

        hook.stop()
        post(exec_sessions(3))
        post(exec_sessions(2))
        everything = alert_ids()
        assert len(everything) > len(first)

        def waiting() -> bool:
            page = httpx.get(f"{base}/api/v1/deliveries", params={"status": "pending", "sink": "soc"}, timeout=5).json()
            items = page["items"]  # the row tried last says why; the rest of its claim waits untried
            return len(items) == len(everything - first) and any(
                "ConnectError" in (d["last_error"] or "") for d in items
            )

        wait_for("the backlog of the receiver that is down", waiting, 15, [serve])
        hook.start()
        wait_for("every alert at the receiver", lambda: set(delivered_ids(hook)) == everything, 20, [serve])
        time.sleep(1.5)  # nothing arrives twice, even later
        assert sorted(delivered_ids(hook)) == sorted(everything)
        assert all(verify_signature(r, SECRET) for r in hook.requests())

        groups = {a["group_id"] for a in httpx.get(f"{base}/api/v1/alerts?limit=500", timeout=5).json()["items"]}
        wait_for("every group in Alertmanager", lambda: {a["labels"]["auditwatch_group"] for a in am.alerts()} == groups,
                 10, [serve])  # fmt: skip
        for alert_id in everything:
            detail = httpx.get(f"{base}/api/v1/alerts/{alert_id}", timeout=5).json()
            assert {(d["sink"], d["status"]) for d in detail["deliveries"]} == {
                (f"alertmanager:{am.url}", "delivered"),
                ("soc", "delivered"),
            }
        assert "hmac" not in serve.output() and SECRET.decode() not in serve.output()
        assert serve.stop() in (0, -15)
    finally:
        am.stop()


def test_detect_notifies_from_kafka_and_postgresql(
    tmp_path: Path, pg_url: str, procs: list[Proc], receivers: list[Receiver]
) -> None:
    bootstrap = kafka_bootstrap()
    hook = Receiver().start()
    receivers.append(hook)
    topic, group = f"audit-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    env = {"AUDITWATCH_DEAD_LETTER_TOPIC": f"{topic}-dlq"}
    detect = Proc(["detect", "--kafka", bootstrap, "--topic", topic, "--group", group, "--db", pg_url,
                   "--partitions", "2", "--notify", f"webhook={hook.url},min_severity=medium"],
                  tmp_path / "detect.log", env)  # fmt: skip
    port = free_port()
    ingest = Proc(["ingest", "--kafka", bootstrap, "--topic", topic, "--port", str(port), "--partitions", "2"],
                  tmp_path / "ingest.log", env)  # fmt: skip
    procs += [detect, ingest]
    ingest.wait_http(f"http://127.0.0.1:{port}/readyz")
    resp = httpx.post(f"http://127.0.0.1:{port}/audit/webhook", content=event_list(exec_sessions(4)), timeout=30)
    assert resp.status_code == 200, resp.text
    wait_for("notifications from detect", lambda: len(hook.requests()) >= 4, 60, [detect, ingest])
    time.sleep(1.5)
    sent = [r.json() for r in hook.requests()]
    assert len({a["id"] for a in sent}) == len(sent)  # none twice
    assert {a["rule_id"] for a in sent} >= {"pod-exec-attach"}
    assert all(a["origin"].startswith(f"kafka:{topic}/") for a in sent)
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            stored = {r[0] for r in conn.execute(sa.text("select id from alerts where severity_rank >= 2"))}
            statuses = set(conn.execute(sa.text("select status from notify_outbox")).scalars())
    finally:
        engine.dispose()
    assert {a["id"] for a in sent} == stored and statuses == {"delivered"}
