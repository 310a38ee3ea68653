"""`/metrics` of the apps, in process: it parses, and its counters say exactly what the webhook answered (events
received, accepted, rejected by reason class; alerts by rule; suppressed alerts; store write failures by fault;
responses by status class; notification outbox depths); access rules as for a GET of the REST API."""

from __future__ import annotations

import copy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest

from auditwatch.metrics import Metrics
from auditwatch.notify.config import parse_sinks
from auditwatch.server import create_api_app, create_serve_app
from auditwatch.settings import Settings
from detectors.alerts import Alert, Severity, make_alert
from detectors.events import AuditEvent
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.cli import RunCli
from tests.support.client import TestClient
from tests.support.events import another_like, batch_of_400, event_list, exec_event, scenario_events
from tests.support.metrics import Samples, label_values, parse_samples, rules_in_pack, total, value

WRITE_TOKEN = "rw-metrics-2f9c1d7a"
READ_TOKEN = "ro-metrics-8b3e5a0c"


def scrape(client: TestClient, **headers: str) -> Samples:
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=")
    return parse_samples(resp.text)


@pytest.fixture(scope="module")
def builtin() -> Pipeline:
    return Pipeline(load_rules(["builtin"]))


@pytest.fixture
def client(db_url: str, builtin: Pipeline) -> Iterator[TestClient]:
    app = create_serve_app(Settings(db_url=db_url, max_body_bytes=4 * 1024 * 1024), pipeline=builtin.fresh())
    with TestClient(app) as c:
        yield c


def test_a_batch_of_n_events_with_k_alerts_counts_n_and_k(client: TestClient) -> None:
    before = scrape(client)
    assert value(before, "auditwatch_events_received_total") == 0
    assert total(before, "auditwatch_alerts_total") == 0
    assert len(label_values(before, "auditwatch_alerts_total", "rule")) == rules_in_pack(
        "builtin"
    )  # every rule's series, at 0
    resp = client.post("/audit/webhook", content=event_list(batch_of_400()))
    assert resp.status_code == 200, resp.text
    n, k = 400, resp.json()["alerts"]
    assert k == 6
    after = scrape(client)
    assert value(after, "auditwatch_events_received_total") == n
    assert value(after, "auditwatch_events_accepted_total") == n
    assert total(after, "auditwatch_events_rejected_total") == 0
    assert total(after, "auditwatch_alerts_total") == k
    assert value(after, "auditwatch_alerts_total", rule="pod-exec-attach", severity="medium") == 1
    assert value(after, "auditwatch_batches_total") == 1
    assert value(after, "auditwatch_batch_duration_seconds_count") == 1
    assert value(after, "auditwatch_store_write_duration_seconds_count") == 1
    assert value(after, "auditwatch_webhook_responses_total", code="2xx") == 1
    assert total(after, "auditwatch_detector_state_keys") > 0
    assert value(after, "auditwatch_rules_loaded", format="auditwatch") == rules_in_pack("builtin")
    assert value(after, "auditwatch_build_info", version=label_values(after, "auditwatch_build_info", "version").pop())
    assert value(after, "process_resident_memory_bytes") > 0
    assert ("python_info" in {name for name, _ in after}) and ("python_gc_collections_total" in {n for n, _ in after})

    again = client.post("/k8s-audit", content=event_list(scenario_events()[:10]))  # the other path counts too
    assert again.status_code == 200
    assert value(scrape(client), "auditwatch_events_received_total") == n + 10


@dataclass(frozen=True)
class RaisesOn:
    """A detector that fails on one event (its auditID and stage)."""

    audit_id: str
    stage: str
    id: str = "raises-on-one"
    stages: frozenset[str] | None = None
    resources: frozenset[str] | None = None

    def detect(self, event: AuditEvent) -> list[Alert]:
        if (event.audit_id, event.stage) == (self.audit_id, self.stage):
            raise ValueError("boom")
        return []


@dataclass(frozen=True)
class UnstorableOn:
    """A detector whose alert on one event (its auditID and stage) no database can store: details not JSON."""

    audit_id: str
    stage: str
    id: str = "unstorable"
    stages: frozenset[str] | None = None
    resources: frozenset[str] | None = None

    def detect(self, event: AuditEvent) -> list[Alert]:
        if (event.audit_id, event.stage) != (self.audit_id, self.stage):
            return []
        alert = make_alert(rule_id=self.id, rule_name="Unstorable", severity=Severity.LOW, mitre=(),
                           message="odd", event=event)  # fmt: skip
        return [replace(alert, details={"when": object()})]


def test_rejected_events_are_counted_by_reason_class(db_url: str, builtin: Pipeline) -> None:
    events = scenario_events()
    poison, unstorable = (
        RaisesOn(events[3]["auditID"], events[3]["stage"]),
        UnstorableOn(events[5]["auditID"], events[5]["stage"]),
    )
    pipeline = Pipeline([*builtin.fresh().detectors, poison, unstorable])
    not_events = [{"kind": "Event", "auditID": 7}, copy.deepcopy(exec_event()) | {"stage": "Sideways"}]
    with TestClient(create_serve_app(Settings(db_url=db_url), pipeline=pipeline)) as client:
        resp = client.post("/audit/webhook", content=event_list([*events, *not_events]))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        after = scrape(client)
    assert (body["accepted"], body["rejected"]) == (len(events) - 2, 4)
    assert value(after, "auditwatch_events_received_total") == len(events) + 2
    assert value(after, "auditwatch_events_accepted_total") == body["accepted"]
    assert value(after, "auditwatch_events_rejected_total", reason="invalid") == 2
    assert value(after, "auditwatch_events_rejected_total", reason="detector_error") == 1
    assert value(after, "auditwatch_events_rejected_total", reason="store_refused") == 1
    received = value(after, "auditwatch_events_received_total")
    assert received == body["accepted"] + total(after, "auditwatch_events_rejected_total")
    # raised, then refused: not in the store, so counted as its event's rejection, not as an alert
    assert "unstorable" not in label_values(after, "auditwatch_alerts_total", "rule")


def test_alerts_suppressed_by_a_rule_exception_are_counted(db_url: str, builtin: Pipeline) -> None:
    app = create_serve_app(Settings(db_url=db_url, exceptions_refresh_s=0.2), pipeline=builtin.fresh())
    with TestClient(app) as client:
        assert client.post("/audit/webhook", content=event_list([exec_event()])).json()["alerts"] == 3
        (alert,) = client.get("/api/v1/alerts?rule=pod-exec-attach").json()["items"]
        created = client.post("/api/v1/exceptions", json={"from_alert": alert["id"], "match": {"user.username": None}})
        assert created.status_code == 201, created.text
        resp = client.post("/audit/webhook", content=event_list([another_like(exec_event(), 1)]))
        assert resp.json()["alerts"] == 2
        after = scrape(client)
    assert value(after, "auditwatch_alerts_suppressed_total") == 1
    assert value(after, "auditwatch_alerts_total", rule="pod-exec-attach", severity="medium") == 1
    assert total(after, "auditwatch_alerts_total") == 5


def test_a_broken_store_counts_a_write_failure_by_fault_and_a_5xx(db_url: str, builtin: Pipeline) -> None:
    with TestClient(create_serve_app(Settings(db_url=db_url), pipeline=builtin.fresh())) as client:
        engine = sa.create_engine(db_url)
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE alerts RENAME TO alerts_gone"))
        engine.dispose()
        resp = client.post("/audit/webhook", content=event_list([exec_event()]))
        assert resp.status_code == 503, resp.text
        after = scrape(client)
    assert value(after, "auditwatch_store_write_failures_total", fault="store") == 1
    assert value(after, "auditwatch_store_write_failures_total", fault="transient") == 0
    assert value(after, "auditwatch_webhook_responses_total", code="5xx") == 1
    assert value(after, "auditwatch_events_received_total") == 0  # a batch not handled is not counted
    assert total(after, "auditwatch_alerts_total") == 0


def test_metrics_need_read_access_when_tokens_are_set(db_url: str, builtin: Pipeline) -> None:
    settings = Settings(db_url=db_url, api_token=WRITE_TOKEN, api_read_token=READ_TOKEN)
    with TestClient(create_serve_app(settings, pipeline=builtin.fresh())) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer guess"}).status_code == 401
        scrape(client, Authorization=f"Bearer {READ_TOKEN}")
        scrape(client, Authorization=f"Bearer {WRITE_TOKEN}")
        assert client.post("/metrics", headers={"Authorization": f"Bearer {READ_TOKEN}"}).status_code == 403
        # the webhook's refusals are counted too: the counter wraps the access check
        assert client.post("/audit/webhook", content=event_list([exec_event()])).status_code == 401
        read = {"Authorization": f"Bearer {READ_TOKEN}"}
        assert client.post("/audit/webhook", content=event_list([exec_event()]), headers=read).status_code == 403
        write = {"Authorization": f"Bearer {WRITE_TOKEN}"}
        assert client.post("/audit/webhook", content=b"{nope", headers=write).status_code == 400
        assert client.post("/audit/webhook", content=event_list([exec_event()]), headers=write).status_code == 200
        after = scrape(client, Authorization=f"Bearer {READ_TOKEN}")
    assert value(after, "auditwatch_webhook_responses_total", code="4xx") == 3
    assert value(after, "auditwatch_webhook_responses_total", code="2xx") == 1
    assert value(after, "auditwatch_events_received_total") == 1


def test_metrics_is_a_plain_route_not_a_redirect(client: TestClient) -> None:
    resp = client.get("/metrics", follow_redirects=False)
    assert resp.status_code == 200 and "auditwatch_events_received_total" in resp.text


def test_notification_sinks_are_counted_with_their_outbox_depth(db_url: str, builtin: Pipeline) -> None:
    sinks = parse_sinks(["webhook=http://127.0.0.1:9/hook,name=nowhere,backoff=60s"])  # discard port: refused
    with TestClient(create_serve_app(Settings(db_url=db_url), pipeline=builtin.fresh(), sinks=sinks)) as client:
        before = scrape(client)
        for name in ("delivered", "failed", "dropped", "requests", "errors"):
            assert value(before, f"auditwatch_notifications_{name}_total", sink="nowhere") == 0
        assert value(before, "auditwatch_notification_outbox_depth", sink="nowhere") == 0
        k = client.post("/audit/webhook", content=event_list([exec_event()])).json()["alerts"]
        after = scrape(client)
    assert k == 3
    assert value(after, "auditwatch_notification_outbox_depth", sink="nowhere") == k  # none can be delivered
    assert value(after, "auditwatch_notifications_delivered_total", sink="nowhere") == 0


def test_the_api_app_exports_the_process_but_no_pipeline(db_url: str) -> None:
    with TestClient(create_api_app(Settings(db_url=db_url))) as client:
        samples = scrape(client)
    names = {name for name, _ in samples}
    assert "auditwatch_build_info" in names and "process_cpu_seconds_total" in names
    assert not {n for n in names if n.startswith(("auditwatch_events", "auditwatch_alerts"))}


def test_apps_in_one_process_have_registries_of_their_own(db_url: str, tmp_path: Path, builtin: Pipeline) -> None:
    first = create_serve_app(Settings(db_url=db_url), pipeline=builtin.fresh())
    second = create_serve_app(Settings(db_url=f"sqlite:///{tmp_path / 'other.db'}"), pipeline=builtin.fresh())
    with TestClient(first) as a, TestClient(second) as b:
        assert a.post("/audit/webhook", content=event_list([exec_event()])).status_code == 200
        assert value(scrape(a), "auditwatch_events_received_total") == 1
        assert value(scrape(b), "auditwatch_events_received_total") == 0
    metrics: Any = first.state.metrics
    assert isinstance(metrics, Metrics) and metrics.registry is not second.state.metrics.registry


def test_rules_loaded_are_counted_by_format() -> None:
    pipeline = Pipeline(load_rules(["builtin", "falco", "sigma"]))
    samples = parse_samples(generate_latest(Metrics.for_detection(pipeline, None).registry).decode())
    falco: Any = next(d for d in pipeline.detectors if d.id == "falco")  # one detector for the whole ruleset
    assert value(samples, "auditwatch_rules_loaded", format="falco") == len(falco.rules) > 40
    assert value(samples, "auditwatch_rules_loaded", format="sigma") == 16
    assert value(samples, "auditwatch_rules_loaded", format="auditwatch") == rules_in_pack("builtin")
    rules = label_values(samples, "auditwatch_alerts_total", "rule")
    assert len(rules) == rules_in_pack("builtin") + rules_in_pack("sigma") + len(
        falco.rules
    )  # each rule's series exists before it fires
    severities = label_values(samples, "auditwatch_alerts_total", "severity")
    assert severities <= {"info", "low", "medium", "high", "critical"}


def test_detect_refuses_a_metrics_listener_it_must_not_or_cannot_open(run_cli: RunCli, tmp_path: Path) -> None:
    common = ("detect", "--kafka", "127.0.0.1:9", "--db", f"sqlite:///{tmp_path / 'alerts.db'}")
    exposed = run_cli(*common, "--metrics-host", "0.0.0.0", "--metrics-port", "9108")
    assert exposed.code == 2 and exposed.err.count("\n") == 1, exposed
    assert exposed.err.startswith("auditwatch: metrics listener: refusing to listen on 0.0.0.0 without authentication")
    assert run_cli(*common, "--metrics-port", "0").err.startswith("auditwatch: bad setting: metrics_port: ")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli(*common, "--metrics-port", str(port))
    assert busy.code == 2 and busy.err.count("\n") == 1, busy
    assert busy.err.startswith(f"auditwatch: metrics listener: cannot listen on 127.0.0.1:{port}: ")
