"""Rule exceptions matched against the alerts of full audit events, through the real rule pipeline."""

from __future__ import annotations

import copy
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detectors.alerts import Alert
from detectors.events import AuditEvent
from detectors.exceptions import ExceptionError, ExceptionSet, RuleException, check_match, field_values
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.events import exec_event

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def privileged_pod(images: list[str], *, user: str = "ci-bot", namespace: str = "build") -> dict[str, Any]:
    containers = [{"name": f"c{i}", "image": image, "securityContext": {"privileged": True}}
                  for i, image in enumerate(images)]  # fmt: skip
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse", "stage": "ResponseComplete",
        "auditID": f"5c1d6a8e-0000-4000-8000-{zlib.crc32(repr((images, user, namespace)).encode()):012d}",
        "requestURI": f"/api/v1/namespaces/{namespace}/pods", "verb": "create",
        "user": {"username": user, "groups": ["system:authenticated"]}, "sourceIPs": ["10.0.0.7"],
        "userAgent": "kubectl/v1.31.2", "objectRef": {"resource": "pods", "namespace": namespace, "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestObject": {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "namespace": namespace},
                          "spec": {"containers": containers}},
        "annotations": {"authorization.k8s.io/decision": "allow"},
        "requestReceivedTimestamp": "2026-11-20T10:00:00.000001Z", "stageTimestamp": "2026-11-20T10:00:00.000420Z",
    }  # fmt: skip


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(load_rules(["builtin"]))


def alerts_of(pipeline: Pipeline, raw: dict[str, Any], rule_id: str) -> list[Alert]:
    found = [a for a in pipeline.fresh().process(AuditEvent(raw=raw)) if a.rule_id == rule_id]
    assert found, f"{rule_id} did not fire"
    return found


def test_exec_exception_matches_the_same_user_and_namespace_only(pipeline: Pipeline) -> None:
    benign = RuleException("e1", "pod-exec-attach", {"user.username": ("mallory@example.com",),
                                                     "objectRef.namespace": ("shop", "payments")})  # fmt: skip
    exceptions = ExceptionSet([benign])
    (alert,) = alerts_of(pipeline, exec_event(), "pod-exec-attach")
    assert exceptions.matching(alert, NOW) is benign
    elsewhere = copy.deepcopy(exec_event())
    elsewhere["objectRef"]["namespace"] = "kube-system"
    elsewhere["requestURI"] = elsewhere["requestURI"].replace("/shop/", "/kube-system/")
    (other,) = alerts_of(pipeline, elsewhere, "pod-exec-attach")
    assert exceptions.matching(other, NOW) is None
    kept, hits = exceptions.split([alert, other], NOW)
    assert kept == [other] and hits == {"e1": [alert.id]}


def test_other_rules_of_the_same_event_are_untouched(pipeline: Pipeline) -> None:
    exceptions = ExceptionSet([RuleException("e1", "pod-exec-attach", {"user.username": ("*",)})])
    all_alerts = pipeline.fresh().process(AuditEvent(raw=exec_event()))
    kept, hits = exceptions.split(all_alerts, NOW)
    assert hits == {"e1": [a.id for a in all_alerts if a.rule_id == "pod-exec-attach"]} and len(hits["e1"]) == 1
    assert sorted(a.rule_id for a in kept) == sorted(a.rule_id for a in all_alerts if a.rule_id != "pod-exec-attach")


def test_container_image_globs_must_cover_every_container(pipeline: Pipeline) -> None:
    """A benign image cannot excuse a second, unknown one: every value a path yields must match."""
    exceptions = ExceptionSet([RuleException("agents", "privileged-container",
                                             {"$containers[*].image": ("registry.corp/agents/*",)})])  # fmt: skip
    (agent,) = alerts_of(pipeline, privileged_pod(["registry.corp/agents/cni:1.2"]), "privileged-container")
    assert exceptions.matching(agent, NOW) is not None
    two = privileged_pod(["registry.corp/agents/cni:1.2", "docker.io/evil/miner:latest"])
    (smuggled,) = alerts_of(pipeline, two, "privileged-container")
    assert exceptions.matching(smuggled, NOW) is None


def test_a_condition_on_a_missing_field_never_holds(pipeline: Pipeline) -> None:
    exceptions = ExceptionSet([RuleException("e", "pod-exec-attach", {"impersonatedUser.username": ("*",)})])
    (alert,) = alerts_of(pipeline, exec_event(), "pod-exec-attach")
    assert exceptions.matching(alert, NOW) is None


def test_expired_exceptions_stop_applying(pipeline: Pipeline) -> None:
    (alert,) = alerts_of(pipeline, exec_event(), "pod-exec-attach")
    match = {"user.username": ("mallory@example.com",)}
    expiring = ExceptionSet([RuleException("e", "pod-exec-attach", match, NOW + timedelta(hours=1))])
    assert expiring.matching(alert, NOW) is not None
    assert expiring.matching(alert, NOW + timedelta(hours=1)) is None


def test_globs_are_whole_and_case_sensitive(pipeline: Pipeline) -> None:
    (alert,) = alerts_of(pipeline, exec_event(), "pod-exec-attach")

    def matches(*globs: str) -> bool:
        return ExceptionSet([RuleException("e", "pod-exec-attach", {"user.username": globs})]).matching(
            alert, NOW
        ) is not None  # fmt: skip

    assert matches("*@example.com") and matches("mallory@example.co?") and matches("x", "mallory@*")
    assert not matches("mallory") and not matches("MALLORY@EXAMPLE.COM") and not matches("*@example.org")


def test_non_string_values_match_as_json(pipeline: Pipeline) -> None:
    (alert,) = alerts_of(pipeline, privileged_pod(["a/b:1"]), "privileged-container")
    assert field_values(alert.event, "$containers[*].securityContext.privileged") == ["true"]
    exceptions = ExceptionSet([RuleException("e", "privileged-container", {"responseStatus.code": ("201",)})])
    assert exceptions.matching(alert, NOW) is not None


def test_field_values_read_the_redacted_event(pipeline: Pipeline) -> None:
    (alert,) = alerts_of(pipeline, exec_event(), "pod-exec-attach")
    assert field_values(alert.event, "user.groups") == ["contractors", "system:authenticated"]
    assert field_values(alert.event, "objectRef.subresource") == ["exec"]
    assert field_values(alert.event, "nothing.here") == []


@pytest.mark.parametrize(
    ("match", "needle"),
    [
        ({}, "at least one field condition"),
        ({"user.username": ()}, "no values"),
        ({"$nope": ("x",)}, "unknown virtual field $nope"),
        ({"a..b": ("x",)}, "bad field path"),
        ({"user.username": ("[z-a",)}, None),  # an unclosed bracket is a literal, as in fnmatch
    ],
)
def test_bad_conditions_are_refused_with_the_reason(match: dict[str, tuple[str, ...]], needle: str | None) -> None:
    if needle is None:
        check_match(match)
        return
    with pytest.raises(ExceptionError, match=needle.replace("$", r"\$")):
        check_match(match)


def test_exceptions_that_do_not_compile_are_left_out_and_listed() -> None:
    good = RuleException("good", "r", {"verb": ("get",)})
    bad = RuleException("bad", "r", {"$nope": ("x",)})
    loaded = ExceptionSet([good, bad])
    assert len(loaded) == 1 and [i for i, _ in loaded.invalid] == ["bad"]
