"""Events whose exporter dropped the annotations alert as the apiserver's own do, in every rule format.

The decision comes from the annotation when present, else from the response code (2xx/101 allow, 403 forbid):
the must-show attacks (privileged pod, URL-encoded token read through exec, `kubectl cp` out) alert in both
shapes, every inline test case of the built-in pack gives the same answer once its annotations are dropped,
and Falco's `ka.auth.decision` and Sigma's decision field read the response code likewise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from detectors.alerts import Alert
from detectors.base import RuleTest, SelfTested
from detectors.decision import decision_for_code
from detectors.events import AuditEvent
from detectors.loading.loader import BUILTIN
from detectors.loading.testing import run_case
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.exporter_events import copy_out, exec_token_read, privileged_pod, without_annotations
from tests.support.falco_events import event as falco_event

ALL_FORMATS = load_rules(["builtin", "falco", "sigma"])
SHAPES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "as the apiserver writes it": lambda raw: raw,
    "exporter without annotations": without_annotations,
}


def alerts_on(raw: dict[str, Any]) -> list[Alert]:
    return Pipeline(ALL_FORMATS).process(AuditEvent(raw=raw))  # a fresh pipeline: nothing suppressed yet


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    ("attack", "rule_id"),
    [(privileged_pod, "privileged-container"), (exec_token_read, "exec-credential-file-access"),
     (copy_out, "exec-kubectl-cp")],
    ids=["privileged pod", "exec with a URL-encoded token read", "kubectl cp out"],
)  # fmt: skip
def test_the_attacks_alert_with_or_without_the_decision_annotation(
    attack: Callable[[], dict[str, Any]], rule_id: str, shape: str
) -> None:
    raw = SHAPES[shape](attack())
    assert ("annotations" in raw) == (shape == "as the apiserver writes it")
    assert rule_id in {a.rule_id for a in alerts_on(raw)}


@pytest.mark.parametrize("attack", [privileged_pod, exec_token_read, copy_out])
def test_dropping_the_annotations_loses_no_alert_in_any_format(attack: Callable[[], dict[str, Any]]) -> None:
    raw = attack()
    assert {a.rule_id for a in alerts_on(without_annotations(raw))} == {a.rule_id for a in alerts_on(raw)}


def test_the_exec_alert_carries_the_decoded_command_and_the_rules_guidance() -> None:
    (alert,) = [
        a for a in alerts_on(without_annotations(exec_token_read())) if a.rule_id == "exec-credential-file-access"
    ]
    assert alert.details["command"] == ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"]
    assert alert.message.endswith(": cat /var/run/secrets/kubernetes.io/serviceaccount/token")
    assert alert.details["description"].startswith("A command run in a pod")
    assert alert.details["response"].startswith("Treat the credential as read")


def test_a_refused_attack_does_not_alert_without_the_annotation() -> None:
    refused = without_annotations(exec_token_read())
    refused.update(stage="ResponseComplete")
    refused["responseStatus"] = {"metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403}
    assert {a.rule_id for a in alerts_on(refused)} & {"exec-credential-file-access", "pod-exec-attach"} == set()


# --- every inline test case of the built-in pack, its annotations dropped --------------------------------


def _annotation_decisions_match_codes(events: tuple[dict[str, Any], ...]) -> bool:
    """Whether dropping the annotations keeps every event's decision: each annotated event's response code
    proves the decision its annotation states (not so for a 403 from admission after an allow, say)."""
    annotated = False
    for raw in events:
        stated = (raw.get("annotations") or {}).get("authorization.k8s.io/decision")
        if stated is None:
            continue
        annotated = True
        code = (raw.get("responseStatus") or {}).get("code")
        if not isinstance(code, int) or decision_for_code(code) != stated:
            return False
    return annotated


def _stripped_cases() -> list[tuple[Any, RuleTest]]:
    cases = []
    for rule in load_rules([BUILTIN]):
        if not isinstance(rule, SelfTested):
            continue
        for case in rule.tests:
            events = case.events or (case.event,)
            if _annotation_decisions_match_codes(events):
                stripped = tuple(without_annotations(raw) for raw in events)
                cases.append(
                    (rule, dataclasses.replace(case, event=stripped[0], events=stripped if case.events else ()))
                )
    return cases


STRIPPED = _stripped_cases()


def test_most_inline_cases_have_an_exporter_shape() -> None:
    assert len(STRIPPED) >= 300
    assert {rule.id for rule, _ in STRIPPED} >= {"privileged-container", "exec-credential-file-access",
                                                 "exec-kubectl-cp", "csr-client-auth-created",
                                                 "rbac-role-grants-secret-read", "denied-then-allowed"}  # fmt: skip


@pytest.mark.parametrize(("rule", "case"), STRIPPED, ids=[f"{r.id}:{c.name}" for r, c in STRIPPED])
def test_inline_case_gives_the_same_answer_without_annotations(rule: Any, case: RuleTest) -> None:
    result = run_case(rule, case, path=rule.source.path)
    assert result.ok, result.detail


# --- Falco and Sigma -------------------------------------------------------------------------------------


def test_falco_anonymous_rule_reads_the_decision_from_the_response_code() -> None:
    anonymous = falco_event("list", "pods", namespace="shop", user="system:anonymous",
                            groups=("system:unauthenticated",))  # fmt: skip
    forbidden = dict(without_annotations(anonymous), responseStatus={"metadata": {}, "code": 403})
    fired = [{a.rule_id for a in alerts_on(raw)} for raw in (anonymous, without_annotations(anonymous), forbidden)]
    assert "falco:anonymous-request-allowed" in fired[0] and "falco:anonymous-request-allowed" in fired[1]
    assert "falco:anonymous-request-allowed" not in fired[2]
