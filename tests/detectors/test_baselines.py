"""Learned baselines (detectors/rules/baseline.py, docs/baselines.md): the built-in habit rules learn, then a
habit is `info` and what is new pages with the baseline it broke; the state round-trips and stays bounded."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import pytest

from detectors.alerts import Alert, Severity
from detectors.base import Detector
from detectors.errors import RuleErrors
from detectors.events import AuditEvent
from detectors.limits import MAX_ALERT_TEXT_BYTES
from detectors.loading.formats import LoadOptions
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.rules.baseline import Baselined
from tests.support.stateful import at

DAY = 86400.0


def exec_by(user: str, namespace: str, command: str = "command=sh", ip: str = "203.0.113.45") -> dict[str, Any]:
    """`kubectl exec -it POD -- sh` over WebSocket, as the apiserver writes it at ResponseStarted."""
    pod = "api-7d9f8c6b5d-x2k4q"
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": "36824dd6-b804-49b8-8b2d-451c62f746b4", "stage": "ResponseStarted",
        "requestURI": f"/api/v1/namespaces/{namespace}/pods/{pod}/exec?{command}&container=api&stdin=true&stdout=true&tty=true",
        "verb": "get",
        "user": {"username": user, "groups": ["developers", "system:authenticated"]},
        "sourceIPs": [ip], "userAgent": "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
        "objectRef": {"resource": "pods", "namespace": namespace, "name": pod, "apiVersion": "v1", "subresource": "exec"},
        "responseStatus": {"metadata": {}, "code": 101},
        "requestReceivedTimestamp": "2026-11-20T09:09:52.931536Z", "stageTimestamp": "2026-11-20T09:09:52.967358Z",
        "annotations": {"authorization.k8s.io/decision": "allow",
                        "authorization.k8s.io/reason": 'RBAC: allowed by RoleBinding "dev-edit" of ClusterRole "edit" to Group "developers"'},
    }  # fmt: skip


def deployment_by(user: str, image: str) -> dict[str, Any]:
    """A Deployment created by a CI service account with `kubectl apply`, at the Request level."""
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request",
        "auditID": "74bd6ea0-6639-4085-9b97-7d8f3e487a9e", "stage": "ResponseComplete",
        "requestURI": "/apis/apps/v1/namespaces/shop/deployments?fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
        "verb": "create",
        "user": {"username": user, "groups": ["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"]},
        "sourceIPs": ["10.244.3.17"], "userAgent": "kubectl/v1.29.3 (linux/amd64) kubernetes/6813625",
        "objectRef": {"resource": "deployments", "namespace": "shop", "name": "cart", "apiGroup": "apps", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestObject": {
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "cart", "namespace": "shop", "labels": {"app": "cart"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "cart"}},
                     "template": {"metadata": {"labels": {"app": "cart"}},
                                  "spec": {"containers": [{"name": "cart", "image": image}]}}},
        },
        "requestReceivedTimestamp": "2026-11-20T09:09:52.931536Z", "stageTimestamp": "2026-11-20T09:09:52.967358Z",
        "annotations": {"authorization.k8s.io/decision": "allow",
                        "authorization.k8s.io/reason": 'RBAC: allowed by ClusterRoleBinding "ci-deployer" of ClusterRole "edit" to ServiceAccount "deployer/ci"'},
    }  # fmt: skip


@functools.cache
def builtin(learning_days: float) -> tuple[Detector, ...]:
    return tuple(load_rules(["builtin"], LoadOptions(baseline_learning_s=learning_days * DAY)))


def rule(rule_id: str, learning_days: float = 7) -> Baselined:
    """A fresh copy of a built-in rule, with empty state."""
    (found,) = [d for d in builtin(learning_days) if d.id == rule_id]
    assert isinstance(found, Baselined)
    return copy.deepcopy(found)


class Feed:
    """Events into a one-rule pipeline, each with its own auditID and time (days after T0)."""

    def __init__(self, detector: Baselined) -> None:
        self.pipeline = Pipeline([detector])
        self.n = 0

    def __call__(self, raw: dict[str, Any], day: float) -> list[Alert]:
        self.n += 1
        return self.pipeline.process(AuditEvent(at(raw, day * DAY, n=self.n)))


def one(alerts: list[Alert]) -> Alert:
    assert len(alerts) == 1
    return alerts[0]


def test_exec_habit_is_info_after_learning_and_a_first_time_pages_with_the_baseline() -> None:
    feed = Feed(rule("pod-exec-attach"))
    for day in range(7):  # a developer execs into the team's namespaces every day of the learning period
        learning = one(feed(exec_by("dana@example.com", "payments"), day))
        assert learning.severity is Severity.INFO
    assert learning.details["baseline"]["state"] == "learning"
    one(feed(exec_by("dana@example.com", "checkout"), 3))
    habit = one(feed(exec_by("dana@example.com", "payments"), 9))
    assert habit.severity is Severity.INFO and habit.details["baseline"]["state"] == "habit"
    assert habit.details["baseline"]["reasons"] == []
    first = one(feed(exec_by("dana@example.com", "kube-system"), 9.5))
    assert first.severity is Severity.MEDIUM  # the rule's own severity
    baseline = first.details["baseline"]
    assert baseline["kind"] == "exec" and baseline["key"] == {"$principal": "dana@example.com"}
    assert baseline["state"] == "new" and baseline["new"] == ["kube-system"]
    assert set(baseline["seen"]) == {"payments", "checkout"} and baseline["reasons"] == ["first time"]
    assert "first exec kube-system for dana@example.com" in first.message
    # once paged, it has been seen: the next one is a habit
    assert one(feed(exec_by("dana@example.com", "kube-system"), 10)).severity is Severity.INFO


def test_exec_new_network_and_sensitive_command_page_even_in_a_habitual_namespace() -> None:
    feed = Feed(rule("pod-exec-attach"))
    for day in range(8):
        feed(exec_by("dana@example.com", "payments", ip="203.0.113.45"), day)
    # the same office network (/24): a habit; another network: a reason to page
    habit = one(feed(exec_by("dana@example.com", "payments", ip="203.0.113.77"), 9))
    assert habit.severity is Severity.INFO
    moved = one(feed(exec_by("dana@example.com", "payments", ip="198.51.100.9"), 9.1))
    assert moved.severity is Severity.MEDIUM and moved.details["baseline"]["reasons"] == ["new network"]
    assert moved.group_key != habit.group_key  # a page does not fold into the group of the habit's info alerts
    assert moved.details["baseline"]["network"] == {"now": "198.51.100.0/24", "new": True, "seen": ["203.0.113.0/24"]}
    token = "command=cat&command=%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken"
    sensitive = one(feed(exec_by("dana@example.com", "payments", command=token), 9.2))
    assert sensitive.severity is Severity.MEDIUM and sensitive.details["baseline"]["reasons"] == ["sensitive"]
    # two reasons: one level above the rule's severity
    metadata = "command=curl&command=http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data%2Fiam%2F"
    both = one(feed(exec_by("dana@example.com", "web", command=metadata), 9.3))
    assert both.severity is Severity.HIGH and both.details["baseline"]["reasons"] == ["first time", "sensitive"]
    # looking at the pod's own endpoint is routine debugging, not a reason
    local = "command=curl&command=-s&command=localhost%3A8080%2Fmetrics"
    assert one(feed(exec_by("dana@example.com", "payments", command=local), 9.4)).severity is Severity.INFO
    # a sensitive command pages during the learning period too
    fresh = Feed(rule("pod-exec-attach"))
    assert one(fresh(exec_by("erin@example.com", "payments", command=token), 0)).severity is Severity.MEDIUM


def test_a_service_accounts_new_pod_address_is_no_reason() -> None:
    feed = Feed(rule("pod-exec-attach"))
    robot = "system:serviceaccount:ci:smoke-tests"
    for day in range(8):
        feed(exec_by(robot, "payments", ip=f"10.244.{day}.17"), day)
    alert = one(feed(exec_by(robot, "payments", ip="10.245.9.4"), 9))
    assert alert.severity is Severity.INFO and "network" not in alert.details["baseline"]


def test_registry_baseline_is_cluster_wide() -> None:
    feed = Feed(rule("untrusted-image-registry"))
    for day in range(8):
        one(feed(deployment_by("system:serviceaccount:ci:deployer", f"ghcr.io/acme/cart:1.{day}"), day))
    other = one(
        feed(deployment_by("system:serviceaccount:argocd:argocd-application-controller", "ghcr.io/acme/ui:2"), 9)
    )
    assert other.severity is Severity.INFO and other.details["baseline"]["key"] == {}
    new = one(feed(deployment_by("system:serviceaccount:ci:deployer", "evil.example.net/miner:latest"), 9.5))
    assert new.severity is Severity.MEDIUM
    assert {k: new.details["baseline"][k] for k in ("kind", "seen", "new")} == {
        "kind": "registry",
        "seen": ["ghcr.io"],
        "new": ["evil.example.net"],
    }
    assert "first registry evil.example.net for the cluster" in new.message


def test_without_learning_the_first_time_pages_at_once() -> None:
    feed = Feed(rule("pod-exec-attach", learning_days=0))
    assert one(feed(exec_by("dana@example.com", "payments"), 0)).severity is Severity.MEDIUM
    assert one(feed(exec_by("dana@example.com", "payments"), 0.1)).severity is Severity.INFO


def test_the_baselines_note_and_context_are_capped_as_the_alert_is() -> None:
    """The note names the principal: a 100 KB username must not make the message or the details unbounded."""
    feed = Feed(rule("pod-exec-attach", learning_days=0))
    user = "u" * 100_000
    alert = one(feed(exec_by(user, "payments"), 0))
    assert alert.severity is Severity.MEDIUM and "[baseline: first exec" in alert.message
    assert len(alert.message.encode()) <= MAX_ALERT_TEXT_BYTES and alert.message.startswith("u" * 1000)
    assert alert.message.endswith(" bytes>") and "bytes> [baseline: first exec payments for uuu" in alert.message
    key = alert.details["baseline"]["key"]["$principal"]
    assert len(key.encode()) <= MAX_ALERT_TEXT_BYTES and key.startswith("u" * 1000) and key.endswith(" bytes>")


def test_the_baseline_round_trips_through_json_and_a_rolled_back_batch_leaves_no_trace() -> None:
    detector = rule("pod-exec-attach")
    feed = Feed(detector)
    for day in range(8):
        feed(exec_by("dana@example.com", "payments"), day)
    state = json.loads(json.dumps(detector.snapshot()))
    restored = rule("pod-exec-attach")
    restored.restore(state)
    assert restored.snapshot() == detector.snapshot()
    again = Feed(restored)
    again.n = feed.n
    assert one(again(exec_by("dana@example.com", "payments"), 9)).severity is Severity.INFO
    assert one(again(exec_by("dana@example.com", "web"), 9.1)).severity is Severity.MEDIUM
    # a batch that fails is undone exactly, so its redelivery raises the same alerts
    before = detector.snapshot()
    with pytest.raises(RuntimeError), feed.pipeline.batch():
        feed(exec_by("dana@example.com", "web"), 9.1)
        feed(exec_by("frank@example.com", "web"), 9.2)
        raise RuntimeError("the store is down")
    assert detector.snapshot() == before
    with feed.pipeline.batch():
        assert one(feed(exec_by("dana@example.com", "web"), 9.1)).severity is Severity.MEDIUM


def follow_logs(seconds: float, n: int) -> AuditEvent:
    """`kubectl logs -f`: a pod event at ResponseStarted that pod-exec-attach cannot match."""
    raw = at(exec_by("dana@example.com", "payments"), seconds, n=n, objectRef__subresource="log",
             requestURI="/api/v1/namespaces/payments/pods/api-7d9f8c6b5d-x2k4q/log?follow=true")  # fmt: skip
    raw["responseStatus"]["code"] = 200
    return AuditEvent(raw)


def test_the_learning_period_starts_at_the_streams_first_event_not_at_the_rules_first_match() -> None:
    detector = rule("pod-exec-attach", learning_days=1)
    pipeline = Pipeline([detector])
    logs = follow_logs(0, n=1)
    assert detector not in pipeline.candidates(logs)  # routed by the wrapped rule's condition
    assert pipeline.process(logs) == []
    first = one(pipeline.process(AuditEvent(at(exec_by("dana@example.com", "payments"), 0.9 * DAY, n=2))))
    assert first.details["baseline"]["learning_until"] == logs.timestamp + DAY
    # a batch undone leaves the stream's start where it was, even if it held an earlier event
    with pytest.raises(RuntimeError), pipeline.batch():
        pipeline.process(follow_logs(-DAY, n=3))
        raise RuntimeError("the store is down")
    assert detector.first_event == logs.timestamp
    # a day after the stream began the learning period is over, though the rule first matched hours ago
    later = one(pipeline.process(AuditEvent(at(exec_by("dana@example.com", "checkout"), 1.1 * DAY, n=4))))
    assert later.details["baseline"]["state"] == "new" and later.severity is Severity.MEDIUM


def test_outside_a_pipeline_the_first_event_judged_starts_the_learning_period() -> None:
    """A rule called on its own (a library user, a rule's own test events) has no stream clock."""
    detector = rule("pod-exec-attach", learning_days=1)
    first = AuditEvent(at(exec_by("dana@example.com", "payments"), 0.5 * DAY, n=1))
    learning = one(detector.detect(first))
    assert learning.severity is Severity.INFO and learning.details["baseline"]["state"] == "learning"
    assert learning.details["baseline"]["learning_until"] == first.timestamp + DAY
    assert detector.first_event == first.timestamp
    later = one(detector.detect(AuditEvent(at(exec_by("dana@example.com", "checkout"), 1.6 * DAY, n=2))))
    assert later.details["baseline"]["state"] == "new" and later.severity is Severity.MEDIUM


def test_a_restored_snapshot_keeps_its_first_event() -> None:
    pipeline = Pipeline([rule("pod-exec-attach", learning_days=1)])
    logs = follow_logs(0, n=1)
    pipeline.process(logs)
    state = json.loads(json.dumps(pipeline.snapshot()))
    assert state["pod-exec-attach"]["first_event"] == logs.timestamp
    detector = rule("pod-exec-attach", learning_days=1)
    restored = Pipeline([detector])
    restored.process(follow_logs(-DAY, n=2))  # before the restore: it no longer counts
    restored.restore(state)
    assert detector.first_event == logs.timestamp
    alert = one(restored.process(AuditEvent(at(exec_by("dana@example.com", "checkout"), 1.1 * DAY, n=3))))
    assert alert.details["baseline"]["state"] == "new"


def test_memory_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "exec-bounded.yaml"
    path.write_text(
        "id: exec-bounded\nname: Exec\nseverity: medium\ndescription: A test rule.\nmitre: T1609\n"
        "stages: [ResponseStarted]\nmatch:\n  objectRef.subresource: exec\n"
        "baseline:\n  kind: exec\n  key: [$principal]\n  term: objectRef.namespace\n  addresses: true\n"
        "  max_keys: 50\n  max_terms: 4\n  max_networks: 2\n  history: 10d\n"
    )
    (detector,) = load_rules([str(path)])
    assert isinstance(detector, Baselined)
    feed = Feed(detector)
    for n in range(300):  # many people, namespaces and networks
        feed(exec_by(f"user{n % 120}@example.com", f"ns-{n % 9}", ip=f"198.51.{n % 7}.1"), n / 1000)
    table = detector.table
    assert len(table.habits) == 50
    assert all(len(h.terms) <= 4 and len(h.networks) <= 2 for h in table.habits.values())
    # the people seen last are the ones kept (events 250 to 299: users 10 to 59)
    assert {k[0] for k in table.habits} == {f"user{n}@example.com" for n in range(10, 60)}
    table.sweep(now=detector.first_event + 11 * DAY)  # nothing seen for the history: all forgotten
    assert table.habits == {}


@pytest.mark.parametrize(
    ("baseline", "message"),
    [
        ("baseline:\n  term: objectRef.namespace\n", "baseline.kind must be"),
        ("baseline:\n  kind: exec\n", "baseline.term must be a field path"),
        ("baseline:\n  kind: exec\n  term: objectRef.namespace\n  keys: [x]\n", "unknown baseline key 'keys'"),
        ("baseline:\n  kind: exec\n  term: $nope\n", "unknown virtual field $nope"),
        ("baseline:\n  kind: exec\n  term: verb\n  max_terms: 0\n", "baseline.max_terms must be an integer"),
    ],
)
def test_a_malformed_baseline_fails_at_its_line(tmp_path: Path, baseline: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "id: bad\nname: Bad\nseverity: medium\ndescription: A test rule.\nmitre: T1609\n"
        f"match:\n  verb: create\n{baseline}"
    )
    with pytest.raises(RuleErrors) as caught:
        load_rules([str(path)])
    (error,) = caught.value.errors
    assert message in str(error) and f"{path}:8" in str(error)


def test_the_learning_period_is_a_setting() -> None:
    from pydantic import ValidationError

    from auditwatch.settings import Settings
    from auditwatch.startup import load_pipeline

    assert Settings().baseline_learning_days == 7
    with pytest.raises(ValidationError):
        Settings(baseline_learning_days=-1)
    pipeline = load_pipeline(["builtin"], baseline_learning_days=0.5)
    learning = {d.learning_s for d in pipeline.detectors if isinstance(d, Baselined)}
    assert learning == {0.5 * DAY}


def test_any_detector_can_be_baselined_a_sigma_rule_too(tmp_path: Path) -> None:
    from detectors.rules.baseline import parse_baseline

    (tmp_path / "exec.yml").write_text(
        "title: Exec into a pod\nid: 6f2b1d0e-0000-4000-8000-000000000013\nlevel: medium\n"
        "logsource:\n  product: kubernetes\n  service: audit\n"
        "detection:\n  selection:\n    objectRef.subresource: exec\n  condition: selection\n"
    )
    (sigma,) = load_rules([str(tmp_path / "exec.yml")])
    spec = parse_baseline({"kind": "exec", "key": ["$principal"], "term": "objectRef.namespace"}, path="t", line=1)
    feed = Feed(Baselined(sigma, spec, learning_s=DAY))
    assert one(feed(exec_by("dana@example.com", "payments"), 0)).severity is Severity.INFO
    assert one(feed(exec_by("dana@example.com", "payments"), 2)).severity is Severity.INFO
    new = one(feed(exec_by("dana@example.com", "web"), 2.1))
    assert new.severity is Severity.MEDIUM and new.details["baseline"]["new"] == ["web"]


def failed_auth(ip: str, user_agent: str) -> dict[str, Any]:
    """A request whose bearer token the apiserver refused (401: one ResponseStarted event, no user)."""
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": "0b9e2f7c-1d5a-4c3e-8f6b-2a7d9c1e4b50", "stage": "ResponseStarted",
        "requestURI": "/apis/apps/v1/namespaces/web/deployments/cart", "verb": "get", "user": {},
        "sourceIPs": [ip], "userAgent": user_agent,
        "objectRef": {"resource": "deployments", "namespace": "web", "name": "cart", "apiGroup": "apps",
                      "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "message": "Authentication failed, attempted: bearer", "code": 401},
        "requestReceivedTimestamp": "2026-11-20T12:00:00.498369Z", "stageTimestamp": "2026-11-20T12:00:00.498669Z",
    }  # fmt: skip


def burst(feed: Feed, ip: str, user_agent: str, day: float) -> Alert:
    """12 refused requests 20 s apart from one address (a retrying client): the rule's one alert."""
    alerts = [a for i in range(12) for a in feed(failed_auth(ip, user_agent), day + i * 20 / DAY)]
    return one(alerts)


def test_a_client_that_routinely_fails_is_a_habit_a_new_network_or_client_pages() -> None:
    feed = Feed(rule("auth-failure-burst-by-ip"))
    kubectl, helm = "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46", "Helm/3.16.3"
    for day, (ip, ua) in enumerate([("10.30.1.12", kubectl), ("10.30.1.27", helm)] * 3):
        assert burst(feed, ip, ua, day).severity is Severity.INFO  # a CI runner pool with an expired token
    # after learning: another runner of the same pool, with a client it uses, is the known misconfiguration
    habit = burst(feed, "10.30.1.40", kubectl, 8)
    assert habit.severity is Severity.INFO and habit.details["baseline"]["state"] == "habit"
    # a new network with a known client, or a known network with a new client: the rule's medium
    assert burst(feed, "198.51.100.14", helm, 9).severity is Severity.MEDIUM
    assert burst(feed, "10.30.1.13", "python-requests/2.31.0", 10).severity is Severity.MEDIUM
    # both new (a scanner from outside): high, with what it broke
    scanner = burst(feed, "203.0.113.9", "Go-http-client/1.1", 11)
    assert scanner.severity is Severity.HIGH
    assert scanner.details["baseline"]["reasons"] == ["first time", "new network"]
    assert scanner.details["baseline"]["network"]["now"] == "203.0.113.0/24"
