"""`serve` killed with -9 in the middle of concurrent webhook traffic, twice, and restarted: the senders re-post
every batch not answered 200 (as the kube-apiserver does) and also some that were answered 200 (a 200 lost on
the way back). Afterwards every valid event has exactly one receipt, every alert of the stateless rules that the
events raise is stored, each once, the alert groups add up, and every poison item was quarantined.

Loopback only; every loop and wait is bounded.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from detectors.events import AuditEvent
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.events import event_list, scenario_events
from tests.support.processes import Proc, free_port

pytestmark = pytest.mark.integration

SENDERS = 4
BATCHES = 96
EVENTS_PER_BATCH = 24
KILL_AFTER = (20, 55)  # kill -9 once this many batches have been answered 200
DEADLINE_S = 240.0
# Items no event can be made of: refused one by one, quarantined, while the rest of their batch is stored
POISON: list[Any] = [
    {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "p", "stage": "ResponseComplete",
     "stageTimestamp": "0001-01-01T00:00:00+14:00", "verb": "create"},
    0,
]  # fmt: skip


def workload() -> tuple[list[list[Any]], list[dict[str, Any]]]:
    """The batches to send (real events with auditIDs of their own, and a poison item in every fourth batch),
    and the valid events among them."""
    run = uuid.uuid4().hex[:8]
    source = scenario_events()
    serial = itertools.count()
    batches: list[list[Any]] = []
    valid: list[dict[str, Any]] = []
    for b in range(BATCHES):
        items: list[Any] = []
        for _ in range(EVENTS_PER_BATCH):
            n = next(serial)
            event = orjson.loads(orjson.dumps(source[n % len(source)]))
            event["auditID"] = f"k9-{run}-{n:06d}"
            items.append(event)
            valid.append(event)
        if b % 4 == 0:
            items.insert(len(items) // 2, POISON[b // 4 % len(POISON)])
        batches.append(items)
    return batches, valid


@dataclass
class Traffic:
    """What the senders share: the batches still to send, and what has been answered 200."""

    pending: list[int]
    acked: list[int] = field(default_factory=list)
    reposted: list[int] = field(default_factory=list)
    failures: int = 0
    cut_off: int = 0  # requests the kill cut off (sent, no answer)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> int | None:
        with self.lock:
            return self.pending.pop(0) if self.pending else None

    def answered(self, index: int, ok: bool) -> None:
        with self.lock:
            if ok:
                self.acked.append(index)
                if len(self.acked) % 7 == 0:  # the 200 lost on the way back: the sender posts the batch again
                    self.pending.append(index)
                    self.reposted.append(index)
            else:
                self.failures += 1
                self.pending.append(index)  # not answered 200: posted again, later


def sender(base: str, bodies: list[bytes], traffic: Traffic, deadline: float, errors: list[str]) -> None:
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < deadline:
            index = traffic.take()
            if index is None:
                if not traffic.pending and len(set(traffic.acked)) == len(bodies):
                    return
                time.sleep(0.05)
                continue
            try:
                resp = client.post(f"{base}/audit/webhook?timeout=30s", content=bodies[index])
            except httpx.TransportError as exc:
                if not isinstance(exc, httpx.ConnectError):
                    traffic.cut_off += 1
                traffic.answered(index, ok=False)
                time.sleep(0.1)  # the server is down: the apiserver backs off too
                continue
            if resp.status_code not in (200, 503):  # 503: not stored, retry later
                errors.append(f"batch {index}: {resp.status_code} {resp.text[:500]}")
            traffic.answered(index, ok=resp.status_code == 200)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "serve.db"


def start(tmp_path: Path, port: int, db: Path, n: int) -> Proc:
    args = ["serve", "--port", str(port), "--db", f"sqlite:///{db}", "--record-receipts"]
    proc = Proc(args, tmp_path / f"serve-{n}.log")
    proc.wait_http(f"http://127.0.0.1:{port}/readyz", timeout_s=60)
    return proc


def test_kill_9_under_concurrent_load_then_redelivery_stores_every_alert_once(tmp_path: Path, database: Path) -> None:
    batches, valid = workload()
    bodies = [event_list(items) for items in batches]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port, database, 0)
    traffic = Traffic(pending=list(range(len(bodies))))
    deadline = time.monotonic() + DEADLINE_S
    errors: list[str] = []
    threads = [threading.Thread(target=sender, args=(base, bodies, traffic, deadline, errors), daemon=True)
               for _ in range(SENDERS)]  # fmt: skip
    kills = 0
    try:
        for thread in threads:
            thread.start()
        for n, after in enumerate(KILL_AFTER, start=1):
            while len(traffic.acked) < after and time.monotonic() < deadline and proc.popen.poll() is None:
                time.sleep(0.01)
            proc.kill9()  # mid-stream: other senders' batches are being read, detected or committed
            kills += 1
            time.sleep(0.5)
            proc = start(tmp_path, port, database, n)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
    finally:
        proc.kill9()
    assert not any(t.is_alive() for t in threads), f"not every batch answered 200 within {DEADLINE_S:g} s"
    assert not errors, errors[:5]
    assert kills == len(KILL_AFTER) and traffic.cut_off > 0, "the kills did not hit requests in flight"
    assert set(traffic.acked) == set(range(len(bodies))) and traffic.reposted

    pipeline = Pipeline(load_rules(["builtin"]))
    stateful = {d.id for d in pipeline.stateful}
    expected = {a.id: a.rule_id for a in pipeline.process_all(AuditEvent(e) for e in valid)
                if a.rule_id not in stateful}  # fmt: skip
    assert len(expected) >= BATCHES, "the workload should raise alerts in every batch"
    with sqlite3.connect(database) as conn:
        stored = dict(conn.execute("select id, rule_id from alerts"))
        alerts = conn.execute("select count(*) from alerts").fetchone()[0]
        grouped = conn.execute("select coalesce(sum(count), 0) from alert_groups").fetchone()[0]
        received = [audit_id for (audit_id,) in conn.execute("select audit_id from event_receipts")]
        quarantined = conn.execute("select count(*) from quarantine").fetchone()[0]
    stored_stateless = {i: r for i, r in stored.items() if r not in stateful}
    missing = sorted(set(expected) - set(stored_stateless))
    assert not missing, f"{len(missing)} alerts lost, e.g. {[expected[i] for i in missing[:5]]}"
    assert stored_stateless == expected, "alerts stored that the events do not raise"
    assert grouped == alerts, "alert group counts do not add up: an alert was folded in twice, or not at all"
    assert sorted(received) == sorted(e["auditID"] for e in valid), "an event was lost, or received twice"
    assert quarantined >= BATCHES // 4, "a poison item was not quarantined"
