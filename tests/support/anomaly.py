"""The built-in anomaly rule, loaded fresh for a test, and the event sequences its own test cases carry."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from detectors.events import AuditEvent
from detectors.loading.loader import BUILTIN_DIR
from detectors.registry import load_rules
from detectors.rules.anomaly import AnomalyRule

RULE_FILE = BUILTIN_DIR / "ml-principal-anomaly.yaml"


def make_rule(**settings: Any) -> AnomalyRule:
    [rule] = load_rules([str(RULE_FILE)])
    assert isinstance(rule, AnomalyRule)
    for key, value in settings.items():
        setattr(rule, key, value)
    return rule


def case_events(name: str) -> list[AuditEvent]:
    rule = make_rule()
    [case] = [c for c in rule.tests if c.name.startswith(name)]
    return [AuditEvent(copy.deepcopy(raw), origin=f"case#{i}") for i, raw in enumerate(case.events)]


def shifted(event: AuditEvent, seconds: float) -> AuditEvent:
    """A copy of `event`, `seconds` later, with its own auditID."""
    raw = copy.deepcopy(event.raw)
    raw["auditID"] = f"{raw['auditID']}+{seconds:g}"
    for key in ("requestReceivedTimestamp", "stageTimestamp"):
        when = AuditEvent({"stageTimestamp": raw[key]}).time + timedelta(seconds=seconds)
        raw[key] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return AuditEvent(raw)
