"""Run the test events that rule files carry (used by the test suite and, later, `auditwatch rules test`)."""

from __future__ import annotations

from dataclasses import dataclass

from detectors.base import Detector
from detectors.events import split_document
from detectors.pipeline import Pipeline
from detectors.rules.match import RuleTest


@dataclass(frozen=True, slots=True)
class CaseResult:
    rule_id: str
    case: RuleTest
    ok: bool
    detail: str


def run_case(detector: Detector, case: RuleTest, *, path: str) -> CaseResult:
    rule_id = detector.id
    origin = f"{path}:{case.line}"
    events, rejected = split_document(case.event, origin=origin)
    if rejected or len(events) != 1:
        reason = rejected[0].reason if rejected else "not exactly one event"
        return CaseResult(rule_id, case, False, f"{origin}: test event is not a valid audit Event: {reason}")
    alerts = Pipeline([detector]).process(events[0])
    fired = any(a.rule_id == rule_id for a in alerts)
    if fired == case.expect_alert:
        return CaseResult(rule_id, case, True, "")
    want = "an alert" if case.expect_alert else "no alert"
    got = "an alert" if fired else "none"
    return CaseResult(rule_id, case, False, f"{origin}: test {case.name!r} expected {want}, got {got}")
