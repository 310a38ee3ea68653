"""Site tuning (detectors/tuning): registry prefixes on component boundaries, deployers only for their writes and
only for the write rules, exceptions reusing rule-exception matching, overrides and disabled rules for the
built-in, Falco and Sigma formats alike."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from detectors.base import Detector
from detectors.errors import RuleErrors
from detectors.events import AuditEvent
from detectors.exceptions import ExceptionSet, RuleException
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.tuning.scope import TrustedRegistries, canonical_image
from detectors.tuning.tuning import Tuning, load_tuning
from tests.support import falco_events as fe
from tests.support.tuning_events import ARGO, ARGO_GROUPS, event, role_binding, workload

BUILTIN = load_rules(["builtin"])


def tuned(tmp_path: Path, text: str, detectors: Sequence[Detector] = BUILTIN) -> Pipeline:
    path = tmp_path / "tuning.yaml"
    path.write_text(text)
    return Pipeline(detectors, load_tuning(str(path), detectors))


def rules_of(pipeline: Pipeline, raw: dict[str, Any]) -> set[str]:
    return {a.rule_id for a in pipeline.process(AuditEvent(raw=raw))}


@pytest.mark.parametrize(
    ("image", "trusted"),
    [
        ("registry.corp/app:1", True),
        ("registry.corp:5000/app:1", True),  # a host covers its ports
        ("registry.corp.evil.io/app:1", False),
        ("registry.corpx/app", False),
        ("ghcr.io/acme/api@sha256:0a1b", True),
        ("ghcr.io/acme-evil/api:1", False),
        ("ghcr.io/acmeapi:1", False),
        ("nginx:1.27", True),  # Docker Hub's official images: docker.io/library/nginx
        ("docker.io/nginx", True),
        ("index.docker.io/library/redis:7", True),
        ("bitnami/redis:7", False),  # docker.io/bitnami: not an official image
        ("docker.io/libraryx/redis", False),
    ],
)
def test_registry_prefixes_match_whole_components(image: str, trusted: bool) -> None:
    assert TrustedRegistries(["registry.corp", "ghcr.io/acme", "docker.io/library"]).trusts(image) is trusted


def test_canonical_image() -> None:
    assert canonical_image("alpine:3.20") == "docker.io/library/alpine:3.20"
    assert canonical_image("localhost:5000/x") == "localhost:5000/x"
    assert canonical_image("quay.io/prometheus/node-exporter") == "quay.io/prometheus/node-exporter"


def test_match_any_needs_one_value_and_match_needs_all() -> None:
    from datetime import UTC, datetime

    from detectors.alerts import Severity, make_alert

    raw = fe.event("get", "pods", namespace="shop", user="dev-1", groups=("team-a", "system:authenticated"))
    alert = make_alert(rule_id="r", rule_name="r", severity=Severity.LOW, mitre=(), message="", event=AuditEvent(raw))
    now = datetime.now(UTC)
    assert ExceptionSet([RuleException("e", "r", {}, None, {"user.groups": ("team-a",)})]).matching(alert, now)
    assert not ExceptionSet([RuleException("e", "r", {"user.groups": ("team-a",)})]).matching(alert, now)


def test_a_deployer_is_excused_only_its_writes_and_only_for_write_rules(tmp_path: Path) -> None:
    plain = Pipeline(BUILTIN)
    pipeline = tuned(tmp_path, "deployers:\n  - name: argo-cd\n    groups: ['system:serviceaccounts:argocd']\n")
    binding = event(1, ARGO, ARGO_GROUPS, "create", "rolebindings", "shop", "web", role_binding("web", "shop", "web"))
    assert rules_of(plain, binding) == {"rbac-binding-to-serviceaccount", "rbac-modified-by-serviceaccount"}
    assert rules_of(pipeline, binding) == set()  # a group is enough
    privileged = workload("Deployment", "agent", "ops", "registry.k8s.io/pause:3.10")
    privileged["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    write = event(2, ARGO, ARGO_GROUPS, "create", "deployments", "ops", "agent", privileged)
    assert "privileged-container" in rules_of(pipeline, write)  # what a write carries still alerts
    exec_ = event(3, ARGO, ARGO_GROUPS, "create", "pods", "ops", "agent-0", None, subresource="exec", code=101,
                  uri="/api/v1/namespaces/ops/pods/agent-0/exec?command=sh&stdin=true")  # fmt: skip
    exec_["stage"] = "ResponseStarted"
    assert "pod-exec-attach" in rules_of(pipeline, exec_)  # not a write
    assert pipeline.tuning is not None
    assert sorted(pipeline.tuning.suppressed.lines()) == [
        "rbac-binding-to-serviceaccount (deployer argo-cd): 1",
        "rbac-change-then-workload-change (deployer argo-cd): 1",  # its binding, then its Deployment
        "rbac-modified-by-serviceaccount (deployer argo-cd): 1",
    ]


def test_exceptions_fields_prefix_equals_globs_and_expiry(tmp_path: Path) -> None:
    text = """\
exceptions:
  - name: team-a-exec
    rules: ["pod-*"]
    namespaces: [team-a]
    fields:
      user.username: {prefix: ["dev*"]}
      responseStatus.code: {equals: [101]}
    expires: 2026-11-20T12:00:00Z
"""
    pipeline = tuned(tmp_path, text)

    def exec_by(user: str, hour: int) -> dict[str, Any]:
        raw = fe.event("create", "pods", name="web-0", namespace="team-a", subresource="exec", user=user,
                       stage="ResponseStarted", query="command=ls&stdout=true", seq=hour)  # fmt: skip
        raw["stageTimestamp"] = raw["requestReceivedTimestamp"] = f"2026-11-20T{hour:02d}:00:00.000000Z"
        return raw

    assert "pod-exec-attach" not in rules_of(pipeline, exec_by("dev*1", 10))  # `*` of a prefix is literal
    assert "pod-exec-attach" in rules_of(pipeline, exec_by("dev-1", 10))
    assert "pod-exec-attach" in rules_of(pipeline, exec_by("dev*1", 13))  # expired by the event's time


def test_falco_and_sigma_rules_are_tuned_alike(tmp_path: Path) -> None:
    both = [*load_rules(["falco"]), *load_rules(["sigma"])]
    pod = fe.create_pod(namespace="kube-system", image="registry.corp/cni:1", privileged=True)
    system_pod_sigma = "sigma:a80d927d-ac6e-443f-a867-e8d6e3897318"  # Creation Of Pod In System Namespace
    assert rules_of(Pipeline(both), pod) == {"falco:create-privileged-pod", system_pod_sigma}
    text = """\
severity:
  'sigma:*': low
exceptions:
  - name: cni-agents
    rules: [falco:create-privileged-pod]
    namespaces: [kube-system]
    images: ['registry.corp/*']
"""
    pipeline = tuned(tmp_path, text, both)
    alerts = pipeline.process(AuditEvent(raw=pod))
    assert [(a.rule_id, a.severity.label) for a in alerts] == [(system_pod_sigma, "low")]
    other_image = fe.create_pod(namespace="kube-system", image="registry.corp.evil.io/cni:1", privileged=True)
    assert "falco:create-privileged-pod" in rules_of(pipeline, other_image)


def test_a_disabled_falco_rule_no_longer_stops_the_first_match(tmp_path: Path) -> None:
    falco = load_rules(["falco"])
    pod = fe.create_pod(namespace="kube-system", privileged=True)
    assert [a.rule_id for a in Pipeline(falco).process(AuditEvent(raw=pod))] == ["falco:create-privileged-pod"]
    pipeline = tuned(tmp_path, "disabled: [falco:create-privileged-pod]\n", falco)
    after = [a.rule_id for a in pipeline.process(AuditEvent(raw=pod))]
    assert after == ["falco:pod-created-in-kube-namespace"]
    assert pipeline.tuning is not None and pipeline.tuning.suppressed.total() == 0  # not run, not suppressed


def test_fresh_pipelines_share_the_tuning_and_its_counters(tmp_path: Path) -> None:
    pipeline = tuned(tmp_path, "trusted_registries: [registry.corp]\n")
    raw = event(1, "alice", ["devs"], "create", "deployments", "shop", "web",
                workload("Deployment", "web", "shop", "registry.corp/web:1"))  # fmt: skip
    pipeline.fresh().process(AuditEvent(raw=raw))
    tuning: Tuning | None = pipeline.tuning
    assert tuning is not None and tuning.suppressed.lines() == ["untrusted-image-registry (trusted registry): 1"]


def test_every_error_has_its_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "deployers:\n  - name: a\n  - name: b\n    service_accounts: [ci]\n"
        "exceptions:\n  - name: e\n    rules: [pod-exec-attach]\n    fields: {'a..b': {equals: [x]}}\n"
        "  - name: e\n    rules: [x]\n    users: [u]\n    expires: next week\n"
    )
    with pytest.raises(RuleErrors) as caught:
        load_tuning(str(path), BUILTIN)
    shown = [str(e).replace(str(path), "F") for e in caught.value.errors]
    assert "F:2: deployers[0]: a deployer needs users, groups or service_accounts" in shown
    assert any(s.startswith("F:4: deployers[1].service_accounts[0]: service account 'ci' must be") for s in shown)
    assert any(s.startswith("F:12: exceptions[1].expires: expires 'next week' is not") for s in shown)
    path.write_text("exceptions:\n  - name: e\n    rules: [pod-exec-attach]\n    fields: {'a..b': {equals: [x]}}\n")
    with pytest.raises(RuleErrors) as caught:
        load_tuning(str(path), BUILTIN)
    assert [str(e) for e in caught.value.errors] == [f"{path}:2: field 'a..b': bad field path 'a..b' at character 2"]
