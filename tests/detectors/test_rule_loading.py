"""Rule files: strict loading with file:line errors, condition semantics, allowlists, messages."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest

from detectors.base import Described, SelfTested, Sourced, Stateful, Warns
from detectors.errors import RuleError, RuleErrors
from detectors.events import AuditEvent
from detectors.falco import FalcoRuleset
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.rules.match import MatchRule
from detectors.rules.stateful import StatefulRule
from detectors.sigma import SigmaDetector
from tests.support.events import exec_event, find_event

HEADER = """\
id: {id}
name: Test rule
severity: high
description: A rule written by a test.
mitre: T1609
"""


def write_rule(tmp_path: Path, body: str, rule_id: str = "test-rule") -> Path:
    path = tmp_path / f"{rule_id}.yaml"
    path.write_text(HEADER.format(id=rule_id) + textwrap.dedent(body))
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(RuleErrors) as info:
        load_rules([str(path)])
    return [str(e) for e in info.value.errors]


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("match:\n  verb: get\nverb: x\n", 8, "unknown key 'verb'"),
        ("match:\n  verb: get\n  verb: list\n", 8, "duplicate key 'verb'"),
        ("match:\n  objectRef..resource: pods\n", 7, "bad field path"),
        ("match:\n  verb: {startswth: g}\n", 7, "unknown operator 'startswth'"),
        ("match:\n  verb: {regex: '('}\n", 7, "bad regex"),
        ("match:\n  $nothing.x: 1\n", 7, "unknown virtual field $nothing"),
        ("match:\n  verb: [get\n", 8, "YAML syntax error"),
        ("stages: [Done]\nmatch:\n  verb: get\n", 6, "stages must be"),
        ("match:\n  any: []\n", 7, "'any' takes a non-empty list"),
        ("match:\n  verb: get\nmessage: '{user..name}'\n", 8, "message placeholder"),
        ("match:\n  verb: get\ntests:\n  - name: t\n    expect: maybe\n    event: {}\n", 9, "expect must be"),
    ],
)
def test_errors_carry_file_and_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = write_rule(tmp_path, body)
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:{line}: "), error
    assert message in error


def test_header_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("id: bad\nname: x\nseverity: urgent\ndescription: d\nmitre: T1609\nmatch: {verb: get}\n")
    assert errors_of(path) == [f"{path}:3: severity 'urgent' is not one of info, low, medium, high, critical"]
    path.write_text("id: bad\nname: x\nseverity: low\ndescription: d\nmitre: X1\nmatch: {verb: get}\n")
    assert "is not an ATT&CK technique id" in errors_of(path)[0]
    path.write_text("id: other\nname: x\nseverity: low\ndescription: d\nmitre: T1609\nmatch: {verb: get}\n")
    assert errors_of(path) == [f"{path}:1: file name must be the rule id: other.yaml"]


def test_all_errors_of_a_directory_are_collected(tmp_path: Path) -> None:
    write_rule(tmp_path, "match:\n  verb: {nope: 1}\n", "rule-a")
    write_rule(tmp_path, "severity2: x\nmatch:\n  verb: get\n", "rule-b")
    (tmp_path / "rule-c.yaml").write_text("just a sentence\n")
    with pytest.raises(RuleErrors) as info:
        load_rules([str(tmp_path)])
    assert len(info.value.errors) == 3
    assert f"{tmp_path / 'rule-c.yaml'}:1: not a rule file of a known format" in str(info.value)


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_rule(a, "match:\n  verb: get\n")
    write_rule(b, "match:\n  verb: get\n")
    with pytest.raises(RuleErrors, match="duplicate rule id 'test-rule'"):
        load_rules([str(a), str(b)])


def fires(tmp_path: Path, match: str, event: dict[str, Any], extra: str = "", stages: str = "") -> bool:
    body = (
        (stages or "stages: [RequestReceived, ResponseStarted, ResponseComplete, Panic]\n")
        + "match:\n"
        + textwrap.indent(textwrap.dedent(match).rstrip("\n") + "\n", "  ")
        + extra
    )
    path = write_rule(tmp_path, body)
    return bool(Pipeline(load_rules([str(path)])).process(AuditEvent(raw=event)))


def deployment() -> dict[str, Any]:
    return find_event(
        lambda e: e.get("objectRef", {}).get("resource") == "deployments" and e["stage"] == "ResponseComplete"
    )


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ("verb: create", True),
        ("verb: [get, create]", True),
        ("verb: [get, list]", False),
        ("responseStatus.code: 201", True),
        ("responseStatus.code: '201'", False),  # types are kept: a string is not a number
        ("$containers[*].securityContext.privileged: true", True),
        ("$containers[*].securityContext.privileged: 1", False),  # YAML 1 is not JSON true
        ("user.groups: contractors", True),
        ("user.groups: {not_in: [devs]}", True),
        ("user.groups: {not_in: [contractors]}", False),
        ("objectRef.namespace: {prefix: [kube-, sh]}", True),
        ("objectRef.name: {suffix: agent}", True),
        ("requestURI: {contains: fieldManager=kubectl}", True),
        ("userAgent: {regex: '^kubectl/v1\\.3[0-9]'}", True),
        ("responseStatus.code: {gte: 200, lt: 300}", True),
        ("responseStatus.code: {gt: 201}", False),
        ("impersonatedUser: {exists: false}", True),
        ("impersonatedUser.username: {exists: true}", False),
        ("not: {verb: create}", False),
        ("any: [{verb: get}, {objectRef.resource: deployments}]", True),
        ("all: [{verb: create}, {objectRef.resource: pods}]", False),
        ("$principal: mallory@example.com", True),
    ],
)
def test_condition_semantics(tmp_path: Path, match: str, expected: bool) -> None:
    assert fires(tmp_path, match, deployment()) is expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", True),
        ("/etc", True),
        ("/etc/kubernetes/pki", True),
        ("/proc/1/root", True),
        ("/var/../etc/shadow", True),  # normalised before matching
        ("//etc", True),
        ("/etc/", True),
        ("/etcd-data", False),  # component boundary, not string prefix
        ("/data/app", False),
        ("relative/etc", False),
    ],
)
def test_path_under(tmp_path: Path, path: str, expected: bool) -> None:
    event = deployment()
    spec = event["requestObject"]["spec"]["template"]["spec"]
    spec["volumes"] = [{"name": "host", "hostPath": {"path": path, "type": ""}}]
    match = "$volumes[*].hostPath.path: {path_under: [/, /etc, /proc]}"
    assert fires(tmp_path, match, event) is expected


def test_allowlist_and_stages_and_message(tmp_path: Path) -> None:
    event = exec_event()
    assert fires(tmp_path, "verb: create", event, stages="stages: [ResponseComplete]\n") is False
    allow = "allowlist:\n  users: ['mallory@*']\n"
    assert fires(tmp_path, "verb: create", event, extra=allow) is False
    allow = "allowlist:\n  groups: [devs]\n  namespaces: [kube-*]\n"
    assert fires(tmp_path, "verb: create", event, extra=allow) is True
    path = write_rule(
        tmp_path,
        "stages: [ResponseStarted]\nmatch:\n  verb: create\n"
        "message: '{user.username} -> {objectRef.namespace}/{objectRef.name} groups={user.groups} imp={impersonatedUser.username}'\n",
    )
    (alert,) = Pipeline(load_rules([str(path)])).process(AuditEvent(raw=event, origin="f:1"))
    assert (
        alert.message
        == "mallory@example.com -> shop/web-7d9f8b6c5d-x2x9k groups=contractors,system:authenticated imp=-"
    )
    assert (alert.rule_name, alert.origin, alert.stage) == ("Test rule", "f:1", "ResponseStarted")


def test_detection_does_not_mutate_the_event(tmp_path: Path) -> None:
    event = deployment()
    event["verb"] = "patch"
    event["requestObject"] = [
        {"op": "add", "path": "/spec/template/spec/containers/0/securityContext", "value": {"privileged": True}}
    ]
    before = copy.deepcopy(event)
    assert fires(tmp_path, "$containers[*].securityContext.privileged: true", event) is True
    assert event == before


def test_alert_ids_are_deterministic_and_forged_audit_ids_do_not_collide(tmp_path: Path) -> None:
    path = write_rule(tmp_path, "stages: [ResponseStarted]\nmatch:\n  verb: create\n")
    pipeline = Pipeline(load_rules([str(path)]))
    event = exec_event()
    first = pipeline.process(AuditEvent(raw=event))[0].id
    assert pipeline.process(AuditEvent(raw=copy.deepcopy(event)))[0].id == first
    forged = copy.deepcopy(event)  # a client reusing the same Audit-ID header later
    forged["requestReceivedTimestamp"] = "2026-11-21T09:00:00.000001Z"
    forged["stageTimestamp"] = "2026-11-21T09:00:00.100001Z"
    assert pipeline.process(AuditEvent(raw=forged))[0].id != first


def test_yaml_merge_keys_may_be_overridden_but_real_duplicates_are_errors(tmp_path: Path) -> None:
    from detectors.loading.yamlload import load_yaml

    doc = load_yaml("base: &b {verb: get, stage: ResponseComplete}\nevent:\n  <<: *b\n  verb: list\n")
    assert doc["event"] == {"verb": "list", "stage": "ResponseComplete"}
    with pytest.raises(RuleError, match="duplicate key 'verb'"):
        load_yaml("event:\n  <<: {verb: get}\n  verb: list\n  verb: watch\n")


def test_image_and_registry_allowlists_need_every_container_allowed(tmp_path: Path) -> None:
    from detectors.rules.header import image_registry

    assert [image_registry(i) for i in ("alpine:3.20", "library/nginx", "reg.example.com/a/b:1", "localhost:5000/x",
                                         "ghcr.io/org/img@sha256:abc")] == [
        "docker.io", "docker.io", "reg.example.com", "localhost:5000", "ghcr.io"]  # fmt: skip
    event = deployment()  # one container: docker.io/library/alpine:3.20
    match = "$containers[*].securityContext.privileged: true"
    assert fires(tmp_path, match, event, extra="allowlist:\n  registries: [docker.io]\n") is False
    assert fires(tmp_path, match, event, extra="allowlist:\n  images: ['docker.io/library/alpine:*']\n") is False
    assert fires(tmp_path, match, event, extra="allowlist:\n  registries: [registry.example.com]\n") is True
    spec = event["requestObject"]["spec"]["template"]["spec"]
    spec["initContainers"] = [{"name": "setup", "image": "evil.example.net/tool:1"}]  # Falco's blind spot
    assert fires(tmp_path, match, event, extra="allowlist:\n  registries: [docker.io]\n") is True


def test_suppress_window_is_a_duration(tmp_path: Path) -> None:
    path = write_rule(tmp_path, "suppress: 30m\nmatch:\n  verb: create\n")
    (rule,) = load_rules([str(path)])
    assert isinstance(rule, MatchRule)
    assert rule.header.suppress_s == 1800
    path = write_rule(tmp_path, "suppress: often\nmatch:\n  verb: create\n")
    assert "suppress must be a duration" in errors_of(path)[0]


def test_detectors_declare_their_abilities(tmp_path: Path) -> None:
    """The optional abilities are protocols: each kind of detector has exactly the ones it should."""
    (tmp_path / "unit.yml").write_text(
        "title: Unit rule\nid: 6f2b1d0e-0000-4000-8000-000000000009\nfalsepositives:\n  - admins\n"
        "logsource:\n  product: kubernetes\n  service: audit\n"
        "detection:\n  selection:\n    verb: create\n  condition: selection\n"
    )
    (tmp_path / "falco.yaml").write_text(
        "- rule: Unit\n  desc: unit\n  condition: ka.verb=create\n  output: created\n  priority: WARNING\n"
        "  source: k8s_audit\n"
    )
    detectors = load_rules(["builtin", str(tmp_path)])
    kinds: dict[str, list[Any]] = {"native": [], "sigma": [], "falco": []}
    for d in detectors:
        if isinstance(d, (MatchRule, StatefulRule)):
            kinds["native"].append(d)
            assert isinstance(d, SelfTested) and isinstance(d, Described) and d.source.path.endswith(f"{d.id}.yaml")
            assert isinstance(d, Stateful) == isinstance(d, StatefulRule)
            assert not isinstance(d, Warns)
        elif isinstance(d, SigmaDetector):
            kinds["sigma"].append(d)
            assert isinstance(d, Described) and isinstance(d, Warns) and d.false_positives == "admins"
            assert not isinstance(d, SelfTested) and not isinstance(d, Stateful)
            assert str(d.source) == f"{tmp_path / 'unit.yml'}:1"
        else:
            assert isinstance(d, FalcoRuleset)
            kinds["falco"].append(d)
            assert isinstance(d, Sourced) and str(d.source) == str(tmp_path / "falco.yaml")
            assert not isinstance(d, (Described, SelfTested, Stateful, Warns))
    assert len(kinds["sigma"]) == len(kinds["falco"]) == 1 and len(kinds["native"]) >= 12
    assert any(isinstance(d, Stateful) for d in kinds["native"])
