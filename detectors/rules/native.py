"""auditwatch's own rule format (docs/rules.md): its rule types, and the shapes of its files.

A file holds one rule (named after its id) or `rules: [...]`; `type:` picks the rule type (default match).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Protocol

from detectors.base import Detector
from detectors.errors import RuleError, RuleErrors, collect
from detectors.loading.formats import LoadOptions
from detectors.loading.yamlload import LocatedDict, LocatedList
from detectors.rules.anomaly import AnomalyRule
from detectors.rules.baseline import Baselined, BaselineSpec, parse_baseline
from detectors.rules.match import MatchRule
from detectors.rules.sequence import SequenceRule
from detectors.rules.windowed import DistinctCountRule, NewTermsRule, ThresholdRule


class RuleFactory(Protocol):
    def __call__(self, node: LocatedDict, *, path: str) -> Detector: ...


# `type:` of an auditwatch rule -> the class that builds it. Data, not an if-chain: a new type is one entry.
RULE_TYPES: dict[str, RuleFactory] = {
    "match": MatchRule.from_node,
    "threshold": ThresholdRule.from_node,
    "distinct_count": DistinctCountRule.from_node,
    "new_terms": NewTermsRule.from_node,
    "sequence": SequenceRule.from_node,
    "anomaly": AnomalyRule.from_node,
}


def _looks_like_sigma(doc: Any) -> bool:
    return isinstance(doc, dict) and "detection" in doc and "logsource" in doc


class NativeRules:
    """The `auditwatch` rule format: one rule per file, or `rules: [...]`."""

    name: ClassVar[str] = "auditwatch"

    def __init__(self) -> None:
        self._detectors: list[tuple[Detector, BaselineSpec | None]] = []

    @staticmethod
    def accepts(docs: list[Any]) -> bool:
        return len(docs) == 1 and isinstance(docs[0], dict) and not _looks_like_sigma(docs[0])

    def add(self, path: Path, docs: list[Any]) -> None:
        nodes = _rule_nodes(docs[0], str(path))
        errors: list[RuleError] = []
        for node in nodes:  # each rule on its own, so that the errors of all of them are reported at once
            collect(errors, partial(self._add_rule, path, node, single=len(nodes) == 1), None)
        if errors:
            raise RuleErrors(sorted(errors, key=lambda e: e.line or 0))  # in the order of the file

    def _add_rule(self, path: Path, node: LocatedDict, *, single: bool) -> None:
        rule_type = node.get("type", "match")
        factory = RULE_TYPES.get(rule_type) if isinstance(rule_type, str) else None
        if factory is None:
            raise RuleError(
                f"unknown rule type {rule_type!r} (known: {', '.join(RULE_TYPES)})",
                path=str(path), line=node.line_of("type"),
            )  # fmt: skip
        errors: list[RuleError] = []
        detector = collect(errors, lambda: factory(node, path=str(path)), None)
        baseline = None
        if "baseline" in node:
            raw, line = node["baseline"], node.line_of("baseline")
            baseline = collect(errors, lambda: parse_baseline(raw, path=str(path), line=line), None)
        rule_id = node.get("id")
        if single and isinstance(rule_id, str) and path.stem != rule_id:
            errors.append(RuleError(f"file name must be the rule id: {rule_id}.yaml", path=str(path),
                                    line=node.line_of("id")))  # fmt: skip
        if errors or detector is None:
            raise RuleErrors(errors)
        self._detectors.append((detector, baseline))

    def finish(self, options: LoadOptions) -> list[Detector]:
        for detector, _ in self._detectors:
            if isinstance(detector, AnomalyRule):  # it learns as long as the baselines do, unless it says
                detector.use_learning_period(options.baseline_learning_s)
        return [
            detector if baseline is None else Baselined(detector, baseline, options.baseline_learning_s)
            for detector, baseline in self._detectors
        ]


def _rule_nodes(doc: Any, path: str) -> list[LocatedDict]:
    if isinstance(doc, LocatedDict) and "rules" in doc and "id" not in doc:
        rules = doc["rules"]
        if set(doc) != {"rules"} or not isinstance(rules, LocatedList):
            raise RuleError(
                "a multi-rule file is a mapping with one key, 'rules', holding a list", path=path, line=doc.line
            )
        out = []
        for i, item in enumerate(rules):
            if not isinstance(item, LocatedDict):
                raise RuleError("each entry of 'rules' must be a mapping", path=path, line=rules.line_of(i))
            out.append(item)
        return out
    if isinstance(doc, LocatedDict):
        return [doc]
    raise RuleError("a rule file holds a rule mapping (or 'rules: [...]')", path=path, line=1)
