"""A batch that `serve` stored, sent again after `serve` was killed with -9 and restarted (the kube-apiserver resends
a batch it got no 200 for; whether the kill came before the answer or the answer was lost, the restarted process
sees the same store): it is answered 200 with its alerts, but none of them is logged, counted in
`auditwatch_alerts_total` or notified again; the alert a rule exception suppressed is not counted again in the
exception's hits or in `auditwatch_alerts_suppressed_total`. SQLite and PostgreSQL, real processes, a real webhook
receiver.

Loopback only; every wait is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.events import event_list, exec_sessions
from tests.support.metrics import parse_samples, total
from tests.support.processes import Proc, free_port
from tests.support.receivers import Receiver

pytestmark = pytest.mark.integration
ALERT_LINE = "WARNING auditwatch.serve: alert "


def wait_for(what: str, check: Callable[[], bool], proc: Proc, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{proc.output()[-3000:]}")
        time.sleep(0.2)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'serve.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def test_a_batch_sent_again_after_kill_9_is_not_logged_counted_or_notified_again(
    tmp_path: Path, store_url: str, hook: Receiver
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["serve", "--port", str(port), "--db", store_url, "--notify", f"webhook={hook.url}/in,backoff=200ms"]

    def start(n: int) -> Proc:
        proc = Proc(args, tmp_path / f"serve-{n}.log")
        proc.wait_http(f"{base}/readyz", timeout_s=60)
        return proc

    def post(body: bytes, proc: Proc) -> dict[str, Any]:
        resp = httpx.post(f"{base}/audit/webhook", content=body, timeout=30)
        assert resp.status_code == 200, f"{resp.text}\n{proc.output()[-3000:]}"
        return dict(resp.json())

    def counted() -> float:
        return total(parse_samples(httpx.get(f"{base}/metrics", timeout=10).text), "auditwatch_alerts_total")

    def delivered() -> list[str]:
        return sorted(r.headers["x-auditwatch-delivery"] for r in hook.requests())

    def stored() -> list[str]:
        return sorted(a["id"] for a in httpx.get(f"{base}/api/v1/alerts?limit=500", timeout=10).json()["items"])

    batch = event_list(exec_sessions(2))
    first = start(0)
    try:
        reply = post(batch, first)
        alerts = reply["alerts"]
        assert alerts >= 2 and reply["new_alerts"] == alerts
        assert counted() == alerts and first.output().count(ALERT_LINE) == alerts
        wait_for("the batch's notifications", lambda: len(delivered()) == alerts, first)
    finally:
        first.kill9()

    second = start(1)
    try:
        again = post(batch, second)  # the apiserver's resend: stored already
        assert (again["alerts"], again["new_alerts"]) == (alerts, 0)
        later = post(event_list(exec_sessions(1)), second)  # a new batch: its alerts are this process's first
        assert later["new_alerts"] == later["alerts"] >= 1
        assert counted() == later["alerts"] and second.output().count(ALERT_LINE) == later["alerts"]
        ids = stored()
        assert len(ids) == alerts + later["alerts"]
        wait_for("the new batch's notifications", lambda: len(delivered()) >= len(ids), second)
        time.sleep(1.0)  # nothing more arrives later either
        assert delivered() == ids  # every alert notified, once
    finally:
        second.kill9()


def test_an_alert_suppressed_by_a_rule_exception_is_one_hit_however_often_its_batch_is_sent(
    tmp_path: Path, store_url: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def start(n: int) -> Proc:
        proc = Proc(["serve", "--port", str(port), "--db", store_url], tmp_path / f"serve-{n}.log")
        proc.wait_http(f"{base}/readyz", timeout_s=60)
        return proc

    def post(body: bytes, proc: Proc) -> int:
        resp = httpx.post(f"{base}/audit/webhook", content=body, timeout=30)
        assert resp.status_code == 200, f"{resp.text}\n{proc.output()[-3000:]}"
        return int(resp.json()["alerts"])

    def suppressed() -> float:
        return total(parse_samples(httpx.get(f"{base}/metrics", timeout=10).text), "auditwatch_alerts_suppressed_total")

    def exception() -> dict[str, Any]:
        (listed,) = httpx.get(f"{base}/api/v1/exceptions", timeout=10).json()["items"]
        return dict(listed)

    batch = event_list(exec_sessions(1))
    first = start(0)
    try:
        made = httpx.post(f"{base}/api/v1/exceptions", timeout=10, json={
            "rule_id": "pod-exec-attach", "match": {"user.username": "mallory@*"}, "comment": "smoke tests",
        })  # fmt: skip
        assert made.status_code == 201, made.text
        assert post(batch, first) == 2  # the event's other two rules
        hit = exception()
        assert hit["hits"] == 1 and hit["last_hit"] is not None and suppressed() == 1
        post(batch, first)  # the apiserver's retry (its 200 lost), to the same process: a duplicate event there
        assert exception() == hit and suppressed() == 1
    finally:
        first.kill9()

    second = start(1)
    try:
        assert post(batch, second) == 2  # after a restart: detected again, its alerts stored already...
        assert exception() == hit and suppressed() == 0  # ...and its suppressed alert counted already
        assert post(event_list(exec_sessions(1)), second) == 2  # a new event's alert is a new hit
        assert exception()["hits"] == 2 and suppressed() == 1
    finally:
        second.kill9()
