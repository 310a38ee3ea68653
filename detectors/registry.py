"""Rule `type:` -> the class that builds it. Data, not an if-chain: a new type is one entry here."""

from __future__ import annotations

from typing import Protocol

from detectors.base import Detector
from detectors.rules.match import MatchRule
from detectors.rules.yamlload import LocatedDict


class RuleFactory(Protocol):
    def __call__(self, node: LocatedDict, *, path: str) -> Detector: ...


RULE_TYPES: dict[str, RuleFactory] = {
    "match": MatchRule.from_node,
}
