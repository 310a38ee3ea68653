"""The built-in anomaly rule, loaded fresh for a test, and the event sequences its own test cases carry."""

from __future__ import annotations

import copy
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
