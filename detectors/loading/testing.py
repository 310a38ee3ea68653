"""Run the test events that rule files carry (`auditwatch rules test` and the test suite)."""

from __future__ import annotations

from dataclasses import dataclass

from detectors.base import Detector, RuleTest, Stateful
from detectors.events import split_document
from detectors.pipeline import Pipeline


@dataclass(frozen=True, slots=True)
class CaseResult:
    rule_id: str
    case: RuleTest
    ok: bool
    detail: str


def run_case(detector: Detector, case: RuleTest, *, path: str) -> CaseResult:
    """Feed the case's event (or sequence of events) to a fresh detector; compare with what it expects."""
    rule_id = detector.id
    origin = f"{path}:{case.line}"
    stateful = detector if isinstance(detector, Stateful) else None
    if stateful is not None:
        stateful.restore({})  # stateful rules start every case from an empty state
    pipeline = Pipeline([detector])
    fired = 0
    try:
        for n, raw in enumerate(case.events or (case.event,)):
            events, rejected = split_document(raw, origin=f"{origin}#{n}")
            if rejected or len(events) != 1:
                reason = rejected.kept[0].reason if rejected else "not exactly one event"
                return CaseResult(
                    rule_id, case, False, f"{origin}: test event #{n} is not a valid audit Event: {reason}"
                )
            fired += sum(1 for a in pipeline.process(events[0]) if a.rule_id == rule_id)
    finally:
        if stateful is not None:
            stateful.restore({})
    count_ok = case.expected_alerts is None or fired == case.expected_alerts
    if (fired > 0) == case.expect_alert and count_ok:
        return CaseResult(rule_id, case, True, "")
    want = "an alert" if case.expect_alert else "no alert"
    if case.expected_alerts is not None:
        want = f"{case.expected_alerts} alert(s)"
    return CaseResult(rule_id, case, False, f"{origin}: test {case.name!r} expected {want}, got {fired}")
