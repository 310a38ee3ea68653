"""What the loader and the rule files can name. Data, not if-chains: a new rule type or file format is
one entry here."""

from __future__ import annotations

from typing import Protocol

from detectors.base import Detector
from detectors.falco import FalcoRules
from detectors.rules.anomaly import AnomalyRule
from detectors.rules.formats import NativeRules, RuleFormat
from detectors.rules.match import MatchRule
from detectors.rules.stateful import DistinctCountRule, NewTermsRule, SequenceRule, ThresholdRule
from detectors.rules.yamlload import LocatedDict
from detectors.sigma import SigmaRules


class RuleFactory(Protocol):
    def __call__(self, node: LocatedDict, *, path: str) -> Detector: ...


# `type:` of an auditwatch rule -> the class that builds it
RULE_TYPES: dict[str, RuleFactory] = {
    "match": MatchRule.from_node,
    "threshold": ThresholdRule.from_node,
    "distinct_count": DistinctCountRule.from_node,
    "new_terms": NewTermsRule.from_node,
    "sequence": SequenceRule.from_node,
    "anomaly": AnomalyRule.from_node,
}

# rule file formats, tried in this order on each file
RULE_FORMATS: list[type[RuleFormat]] = [
    NativeRules,
    FalcoRules,
    SigmaRules,
]
