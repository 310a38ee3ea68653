"""End to end against a real kube-apiserver: its audit webhook -> auditwatch -> alerts over REST.

`scripts/kube-e2e.sh` builds kube-apiserver, kubectl and etcd from the Go module proxy (cached; `scripts/
test.sh` builds them before pytest) and starts them on loopback with the README's audit flags: the
recommended policy, the mTLS webhook kubeconfig template, a 1 s batch wait, and the log backend writing the
same events to a file. The scenario runs as three users of a static token file (an admin in system:masters,
alice with no rights, a CI deployer with a namespaced Role) plus anonymous and impersonated requests, once
against `auditwatch serve` and once against `ingest` + `detect` + `api` over Kafka and PostgreSQL.

What it proves: every attack's alert is over REST within 10 s (60 s for the ones sent while auditwatch was
down for 20 s: the apiserver's retries deliver them); the benign phase raises nothing above `low`; every
event of the log backend file was received (by auditID, stage and stageTimestamp; auditwatch records a
receipt per event with `--record-receipts`); no request alerts twice for one rule; and replaying the log
file gives exactly the live alerts.
"""

from __future__ import annotations

import gzip
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson
import pytest

from auditwatch.replay import replay
from detectors.alerts import Severity
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.tuning.tuning import load_tuning
from tests.support.kube_cluster import USERS, AuditKey, KubeCluster, require_kube_binaries
from tests.support.kube_scenario import TUNING, Step, attack_steps, benign_phase
from tests.support.processes import Proc, free_port
from tests.support.services import kafka_bootstrap

pytestmark = pytest.mark.integration

ALERT_WITHIN_S = 10.0
OUTAGE_S = 20.0
AFTER_OUTAGE_WITHIN_S = 60.0  # the webhook retries after 10 s, then 15 s, 22 s, 34 s (x 1.5, jittered)
ALERTS_ALLOWED_IN_BENIGN = Severity.LOW
CAPTURE_DIR = os.environ.get("KUBE_E2E_CAPTURE")  # set to keep this run's audit log and alerts as the corpus


# ------------------------------------------------------------------------------------------ auditwatch
class Auditwatch(Protocol):
    procs: list[Proc]

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def rest(self) -> httpx.Client: ...


def _wait_ready(client: httpx.Client, path: str, procs: list[Proc], timeout_s: float = 40) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for p in procs:
            if p.popen.poll() is not None:
                raise AssertionError(f"{p.args[0]} exited {p.popen.returncode}: {p.output()[-3000:]}")
        try:
            if client.get(path).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"auditwatch not ready in {timeout_s}s: " + "\n".join(p.output()[-2000:] for p in procs))


class EmbeddedAuditwatch:
    """`auditwatch serve` on the webhook kubeconfig's port: HTTPS, client certificates required."""

    def __init__(self, cluster: KubeCluster, tmp: Path) -> None:
        self.cluster, self.tmp = cluster, tmp
        self.db = f"sqlite:///{tmp / 'auditwatch.db'}"
        self.procs: list[Proc] = []

    def start(self) -> None:
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.cluster.auditwatch_port),
                *self.cluster.tls_flags(), "--db", self.db, "--record-receipts", "--tuning", str(TUNING)]  # fmt: skip
        self.procs = [Proc(args, self.tmp / "serve.log")]
        with self.rest() as client:
            _wait_ready(client, "/readyz", self.procs)

    def stop(self) -> None:
        for p in self.procs:  # uvicorn re-raises SIGTERM once its shutdown (the state checkpoint) is done
            assert p.stop() in (0, -15), p.output()[-2000:]

    def rest(self) -> httpx.Client:
        return self.cluster.auditwatch_client()


class DistributedAuditwatch:
    """`ingest` (HTTPS + client certificates) -> Kafka -> `detect` -> PostgreSQL <- `api`."""

    def __init__(self, cluster: KubeCluster, tmp: Path, pg_url: str) -> None:
        self.cluster, self.tmp, self.pg_url = cluster, tmp, pg_url
        self.bootstrap = kafka_bootstrap()
        suffix = uuid.uuid4().hex[:8]
        self.topic, self.group = f"kube-e2e-{suffix}", f"kube-e2e-{suffix}"
        self.env = {"AUDITWATCH_DEAD_LETTER_TOPIC": f"kube-e2e-dlq-{suffix}"}
        self.api_port = free_port()
        self.api: Proc | None = None
        self.procs: list[Proc] = []

    def start(self) -> None:
        kafka = ["--kafka", self.bootstrap, "--topic", self.topic, "--partitions", "3"]
        ingest = Proc(["ingest", *kafka, "--host", "127.0.0.1", "--port", str(self.cluster.auditwatch_port),
                       *self.cluster.tls_flags()], self.tmp / "ingest.log", self.env)  # fmt: skip
        detect = Proc(["detect", *kafka, "--group", self.group, "--db", self.pg_url, "--record-receipts",
                       "--tuning", str(TUNING)],
                      self.tmp / "detect.log", self.env)  # fmt: skip
        if self.api is None:
            self.api = Proc(["api", "--port", str(self.api_port), "--db", self.pg_url], self.tmp / "api.log")
        self.procs = [ingest, detect]
        with self.cluster.auditwatch_client() as client:
            _wait_ready(client, "/readyz", [ingest, detect])
        with self.rest() as client:
            _wait_ready(client, "/readyz", [self.api])

    def stop(self) -> None:
        for p in self.procs:  # the webhook receiver and the detectors; the REST API stays up
            assert p.stop() in (0, -15), p.output()[-2000:]  # -15: uvicorn re-raises SIGTERM after its shutdown

    def kill_all(self) -> None:
        for p in [*self.procs, *([self.api] if self.api else [])]:
            p.kill9()

    def rest(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=10)


def fetch_alerts(aw: Auditwatch) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    with aw.rest() as client:
        for _ in range(100):
            params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/alerts", params=params).raise_for_status().json()
            out.extend(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                break
    return out


def fetch_receipts(aw: Auditwatch) -> dict[AuditKey, datetime]:
    """Every receipt: (auditID, stage, stageTimestamp) -> when auditwatch received it."""
    keys: dict[AuditKey, datetime] = {}
    cursor: str | None = None
    with aw.rest() as client:
        for _ in range(1000):
            params: dict[str, Any] = {"limit": 5000, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/receipts", params=params).raise_for_status().json()
            keys.update(((r["audit_id"], r["stage"], r["stage_timestamp"]), _parse_time(r["received_at"]))
                        for r in page["items"])  # fmt: skip
            cursor = page["next_cursor"]
            if not cursor:
                break
    return keys


def wait_until(what: str, check: Callable[[], bool], timeout_s: float, aw: Auditwatch) -> float:
    """Poll `check`; return the seconds it took, or fail with auditwatch's logs."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if check():
            return time.monotonic() - start
        time.sleep(0.25)
    logs = "\n".join(f"--- {p.args[0]}:\n{p.output()[-3000:]}" for p in aw.procs)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{logs}")


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _time(alert: dict[str, Any]) -> datetime:
    return _parse_time(alert["time"])


def missing_for(step: Step, alerts: list[dict[str, Any]]) -> set[str]:
    seen = {a["rule_id"] for a in alerts if _time(a) >= step.started}  # the events of this step or later
    return set(step.expect) - seen


@dataclass
class Outcome:
    alerts: list[dict[str, Any]]
    steps: list[Step]
    benign_alerts: list[dict[str, Any]]
    outage: tuple[datetime, datetime]  # auditwatch stopped, auditwatch being started again


def run_scenario(k: KubeCluster, aw: Auditwatch, tmp: Path) -> Outcome:
    aw.start()
    k.start()
    k.wait_ready()
    received = lambda: k.audit_keys() <= fetch_receipts(aw).keys()  # noqa: E731

    benign_start = datetime.now(UTC)
    benign_phase(k)
    wait_until("the benign phase's events", received, 30, aw)
    benign_end = datetime.now(UTC)
    benign_alerts = [a for a in fetch_alerts(aw) if benign_start - timedelta(seconds=1) <= _time(a) <= benign_end]

    steps = attack_steps()
    outage_started: float | None = None
    outage = (benign_end, benign_end)
    for step in steps:
        if step.during_outage and outage_started is None:
            aw.stop()
            outage_started, outage = time.monotonic(), (datetime.now(UTC), benign_end)
        if not step.during_outage and outage_started is not None:
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
            # Taken before the start: once listening, auditwatch may receive new events before start() returns.
            outage = (outage[0], datetime.now(UTC))
            aw.start()
            for held in (s for s in steps if s.during_outage):
                held.latency_s = wait_until(f"alerts of '{held.name}' after the outage",
                                            lambda s=held: not missing_for(s, fetch_alerts(aw)),  # type: ignore[misc]
                                            AFTER_OUTAGE_WITHIN_S, aw)  # fmt: skip
            outage_started = None
        step.started = datetime.now(UTC)
        step.run(k)
        if not step.during_outage:
            step.latency_s = wait_until(f"alerts of '{step.name}'", lambda s=step: not missing_for(s, fetch_alerts(aw)),
                                        ALERT_WITHIN_S, aw)  # type: ignore[misc]  # fmt: skip

    wait_until("every event of the log backend", received, AFTER_OUTAGE_WITHIN_S, aw)
    return Outcome(fetch_alerts(aw), steps, benign_alerts, outage)


def summary(outcome: Outcome, events: int) -> str:
    by_rule = Counter(a["rule_id"] for a in outcome.alerts)
    lines = [f"{events} events, {len(outcome.alerts)} alerts: {dict(sorted(by_rule.items()))}"]
    lines += [f"  {s.latency_s:5.1f} s  {s.name}{'  (sent while auditwatch was down)' if s.during_outage else ''}"
              for s in outcome.steps]  # fmt: skip
    return "\n".join(lines)


def check_outcome(k: KubeCluster, aw: Auditwatch, outcome: Outcome) -> None:
    print(summary(outcome, len(k.audit_keys())))  # shown with -s, and with a failure
    # The benign phase: nothing above low.
    loud = [(a["rule_id"], a["severity"], a["message"]) for a in outcome.benign_alerts
            if Severity.parse(a["severity"]) > ALERTS_ALLOWED_IN_BENIGN]  # fmt: skip
    assert not loud, f"benign phase alerted: {loud}"
    for step in outcome.steps:
        assert not missing_for(step, outcome.alerts), step.name
        limit = AFTER_OUTAGE_WITHIN_S if step.during_outage else ALERT_WITHIN_S
        assert step.latency_s <= limit, (step.name, step.latency_s)

    # Nothing lost, nothing invented: the receipts are the log backend's events (read before, then after). The
    # cluster logs on (leases, controllers) after the scenario's last wait, and the webhook's batches trail the log
    # by up to a second: what the log holds now is waited for (bounded, failing with the logs) before comparing.
    logged_before = k.audit_keys()
    wait_until("the log's events so far", lambda: logged_before <= fetch_receipts(aw).keys(), ALERT_WITHIN_S, aw)
    receipts = fetch_receipts(aw)
    logged_after = k.audit_keys()
    lost, invented = logged_before - receipts.keys(), receipts.keys() - logged_after
    assert not lost, f"{len(lost)} events written to the log never arrived"
    assert not invented, f"{len(invented)} receipts of events the apiserver never logged"
    assert len(logged_before) > 2000, "expected the apiserver's bootstrap traffic and the scenario"
    # ... and what happened while auditwatch was down did arrive, later: the apiserver's retries.
    down, up = outcome.outage
    held = {key: at for key, at in receipts.items() if down < _parse_time(key[2]) < up}
    assert len(held) >= 2, "the outage steps' events"
    assert all(at >= up for at in held.values()), "events of the outage received before auditwatch was back?"

    # No request alerts twice for one rule (the apiserver re-sent batches while auditwatch was down).
    twice = [key for key, n in Counter((a["rule_id"], a["audit_id"], a["stage"]) for a in outcome.alerts).items()
             if n > 1]  # fmt: skip
    assert not twice, twice

    # The webhook backend gave up on nothing: apiserver_audit_error_total counts batches dropped after retries.
    metrics = k.request("GET", "/metrics", token=USERS["admin"]).text
    errors = [line for line in metrics.splitlines() if line.startswith("apiserver_audit_error_total")]
    assert all(line.endswith(" 0") for line in errors), errors
    events_total = [line for line in metrics.splitlines() if line.startswith("apiserver_audit_event_total")]
    assert events_total and float(events_total[0].split()[-1]) >= len(logged_before), events_total

    # Replaying the log backend's file finds exactly what the live run found.
    live = {(a["rule_id"], a["audit_id"], a["stage"]) for a in outcome.alerts}
    assert live == replayed_alerts(k.audit_log)


def replayed_alerts(path: Path) -> set[tuple[str, str, str]]:
    found: set[tuple[str, str, str]] = set()
    detectors = load_rules(["builtin"])
    replay([str(path)], Pipeline(detectors, load_tuning(str(TUNING), detectors)),
           emit=lambda a: found.add((a.rule_id, a.audit_id, a.stage)))  # fmt: skip
    return found


def capture(k: KubeCluster, outcome: Outcome) -> None:
    """Keep this run as the committed corpus (KUBE_E2E_CAPTURE=dir): the log file and the live alerts."""
    assert CAPTURE_DIR
    out = Path(CAPTURE_DIR)
    out.mkdir(parents=True, exist_ok=True)
    with k.audit_log.open("rb") as src, gzip.GzipFile(out / "audit.jsonl.gz", "wb", mtime=0) as dst:
        shutil.copyfileobj(src, dst)
    alerts = sorted(
        ({"rule_id": a["rule_id"], "audit_id": a["audit_id"], "stage": a["stage"], "severity": a["severity"]}
         for a in outcome.alerts),
        key=lambda a: (a["rule_id"], a["audit_id"], a["stage"]),
    )  # fmt: skip
    (out / "alerts.json").write_bytes(orjson.dumps(alerts, option=orjson.OPT_INDENT_2) + b"\n")


# ------------------------------------------------------------------------------------------ tests
@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KubeCluster]:
    k = KubeCluster(tmp_path / "kube", require_kube_binaries())
    k.pki()
    try:
        yield k
    finally:
        k.stop()


def test_kube_apiserver_to_embedded_auditwatch(cluster: KubeCluster, tmp_path: Path) -> None:
    aw = EmbeddedAuditwatch(cluster, tmp_path)
    try:
        outcome = run_scenario(cluster, aw, tmp_path)
        check_outcome(cluster, aw, outcome)
        if CAPTURE_DIR:
            capture(cluster, outcome)
    finally:
        cluster.stop()
        for p in aw.procs:
            p.kill9()


def test_kube_apiserver_to_kafka_and_postgres(cluster: KubeCluster, tmp_path: Path, pg_url: str) -> None:
    aw = DistributedAuditwatch(cluster, tmp_path, pg_url)
    try:
        outcome = run_scenario(cluster, aw, tmp_path)
        check_outcome(cluster, aw, outcome)
    finally:
        cluster.stop()
        aw.kill_all()
