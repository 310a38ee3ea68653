"""`/metrics` of real processes: `serve` scraped by a real Prometheus with a bearer token (and refused without
one), the alerting rules loaded and evaluated by it; `ingest` and `detect --metrics-port` counting what went
through real Kafka. Waits are bounded; processes are always stopped."""

from __future__ import annotations

import copy
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.events import another_like, event_list, exec_event, scenario_events
from tests.support.metrics import Samples, label_values, parse_samples, rules_in_pack, total, value
from tests.support.paths import ROOT
from tests.support.processes import Proc, free_port
from tests.support.prometheus import PrivatePrometheus, prometheus_tool, scrape_job
from tests.support.services import kafka_bootstrap

pytestmark = pytest.mark.integration

RULES = ROOT / "deploy" / "prometheus" / "auditwatch-rules.yaml"
WRITE_TOKEN = "rw-prom-5d1e9c3b7a"
READ_TOKEN = "ro-prom-0c8f2a6e4d"
WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()


def token_files(tmp_path: Path) -> tuple[Path, Path]:
    write, read = tmp_path / "write.token", tmp_path / "read.token"
    write.write_text(WRITE_TOKEN + "\n")
    read.write_text(READ_TOKEN + "\n")
    return write, read


def scrape(url: str, proc: Proc, timeout_s: float = 30.0) -> Samples:
    """GET /metrics with the read-only token, once it answers (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            resp = httpx.get(url, headers=READ, timeout=5)
            if resp.status_code == 200:
                return parse_samples(resp.text)
        except httpx.TransportError:
            pass
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer: {proc.output()[-3000:]}")
        time.sleep(0.2)


def wait_for_samples(url: str, proc: Proc, check: Any, timeout_s: float = 60.0) -> Samples:
    deadline = time.monotonic() + timeout_s
    while True:
        samples = scrape(url, proc)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            interesting = {k: v for k, v in samples.items() if k[0].startswith("auditwatch_")}
            raise AssertionError(f"{url}: not there after {timeout_s}s: {interesting}\n{proc.output()[-3000:]}")
        time.sleep(0.5)


def test_serve_scraped_by_a_real_prometheus_with_a_bearer_token(tmp_path: Path, procs: list[Proc]) -> None:
    promtool = prometheus_tool("promtool")
    write, read = token_files(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = Proc(["serve", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'alerts.db'}",
                  "--token-file", str(write), "--read-token-file", str(read)], tmp_path / "serve.log")  # fmt: skip
    procs.append(serve)
    serve.wait_http(f"{base}/healthz")
    events = scenario_events()
    resp = httpx.post(f"{base}/audit/webhook", content=event_list(events), headers=WRITE, timeout=30)
    assert resp.status_code == 200, resp.text
    n, k = len(events), resp.json()["alerts"]
    assert k == 6 and resp.json()["accepted"] == n

    assert httpx.get(f"{base}/metrics", timeout=5).status_code == 401
    text = httpx.get(f"{base}/metrics", headers=READ, timeout=5).text
    samples = parse_samples(text)
    assert value(samples, "auditwatch_events_received_total") == n
    assert total(samples, "auditwatch_alerts_total") == k
    lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0 and lint.stdout + lint.stderr == "", (
        lint.stdout + lint.stderr
    )  # Prometheus' naming lint

    target = f"127.0.0.1:{port}"
    prometheus = PrivatePrometheus(
        tmp_path / "prometheus",
        [scrape_job("auditwatch-serve", target, token_file=read), scrape_job("auditwatch-anonymous", target)],
        rule_files=[RULES],
    )
    prometheus.start()
    try:
        prometheus.wait_for("up", {"auditwatch-serve": 1, "auditwatch-anonymous": 0})
        prometheus.wait_for("auditwatch_events_received_total", {"auditwatch-serve": n})
        assert prometheus.query("sum by (job) (auditwatch_alerts_total)") == {"auditwatch-serve": k}
        assert prometheus.query('auditwatch_webhook_responses_total{code="2xx"}') == {"auditwatch-serve": 1}
        anonymous = [
            t for t in prometheus.api("targets")["activeTargets"] if t["labels"]["job"] == "auditwatch-anonymous"
        ]
        assert "401" in anonymous[0]["lastError"]

        more = [another_like(exec_event(), i) for i in range(1, 4)]
        resp = httpx.post(f"{base}/audit/webhook", content=event_list(more), headers=WRITE, timeout=30)
        assert resp.status_code == 200, resp.text
        prometheus.wait_for("auditwatch_events_received_total", {"auditwatch-serve": n + len(more)})
        prometheus.wait_for("sum by (job) (auditwatch_alerts_total)", {"auditwatch-serve": k + resp.json()["alerts"]})

        def rules_evaluated() -> list[dict[str, Any]]:
            (group,) = prometheus.api("rules")["groups"]
            assert group["name"] == "auditwatch" and len(group["rules"]) == 10
            return [r for r in group["rules"] if r["health"] != "ok"]

        deadline = time.monotonic() + 30
        while rules_evaluated() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert rules_evaluated() == []  # every rule's query runs against the real series
        down = prometheus.api("alerts")["alerts"]
        # AuditwatchDown is pending for the anonymous job. AuditwatchNoEvents may be pending too when every sample
        # Prometheus took came after the posts (increase() over them is 0); neither may fire within the test.
        assert {a["labels"]["alertname"] for a in down} <= {"AuditwatchDown", "AuditwatchNoEvents"}
        assert all(a["state"] == "pending" for a in down), down
    finally:
        prometheus.stop()


def test_ingest_and_detect_count_what_went_through_kafka(tmp_path: Path, procs: list[Proc]) -> None:
    bootstrap = kafka_bootstrap()
    write, read = token_files(tmp_path)
    topic, group = f"audit-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    env = {"AUDITWATCH_DEAD_LETTER_TOPIC": f"{topic}-dlq"}
    metrics_port, ingest_port = free_port(), free_port()
    detect = Proc(["detect", "--kafka", bootstrap, "--topic", topic, "--group", group, "--partitions", "2",
                   "--db", f"sqlite:///{tmp_path / 'alerts.db'}", "--metrics-port", str(metrics_port),
                   "--token-file", str(write), "--read-token-file", str(read)], tmp_path / "detect.log", env)  # fmt: skip
    ingest = Proc(["ingest", "--kafka", bootstrap, "--topic", topic, "--port", str(ingest_port), "--partitions", "2"],
                  tmp_path / "ingest.log", env)  # fmt: skip
    procs += [detect, ingest]
    ingest.wait_http(f"http://127.0.0.1:{ingest_port}/readyz")
    detect_url = f"http://127.0.0.1:{metrics_port}/metrics"
    before = scrape(detect_url, detect)
    assert value(before, "auditwatch_rules_loaded", format="auditwatch") == rules_in_pack("builtin")
    assert value(before, "auditwatch_kafka_records_consumed_total") == 0
    assert httpx.get(detect_url, timeout=5).status_code == 401
    # the probes' path needs no token (a kubelet probe carries none): deploy/distributed/detect.yaml uses it
    assert httpx.get(f"http://127.0.0.1:{metrics_port}/healthz", timeout=5).json() == {"status": "ok"}

    events = scenario_events()
    bad = copy.deepcopy(exec_event())
    del bad["auditID"]
    resp = httpx.post(f"http://127.0.0.1:{ingest_port}/audit/webhook", content=event_list([*events, bad]), timeout=30)
    assert resp.status_code == 200 and resp.json()["accepted"] == len(events), resp.text
    ingested = parse_samples(httpx.get(f"http://127.0.0.1:{ingest_port}/metrics", timeout=5).text)
    assert value(ingested, "auditwatch_events_received_total") == len(events) + 1
    assert value(ingested, "auditwatch_events_accepted_total") == len(events)
    assert value(ingested, "auditwatch_events_rejected_total", reason="invalid") == 1
    assert value(ingested, "auditwatch_webhook_responses_total", code="2xx") == 1
    assert "auditwatch_alerts_total" not in {name for name, _ in ingested}

    def caught_up(samples: Samples) -> bool:
        lags = [v for (name, _), v in samples.items() if name == "auditwatch_kafka_consumer_lag"]
        return value(samples, "auditwatch_kafka_records_consumed_total") == len(events) and bool(lags) and not any(lags)

    detected = wait_for_samples(detect_url, detect, caught_up)
    assert value(detected, "auditwatch_events_received_total") == len(events)
    assert value(detected, "auditwatch_events_accepted_total") == len(events)
    assert total(detected, "auditwatch_alerts_total") == 6
    assert value(detected, "auditwatch_batches_total") >= 1
    assert label_values(detected, "auditwatch_kafka_consumer_lag", "partition") <= {"0", "1"}
    assert value(detected, "auditwatch_kafka_commit_failures_total") == 0
    assert total(detected, "auditwatch_detector_state_keys") > 0
