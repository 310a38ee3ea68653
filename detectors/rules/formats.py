"""Rule file formats. A format recognises its files, collects them in load order, then builds detectors.

Formats see every file of a load before building, because some (Falco) let later files modify earlier ones.
The list of formats is data (`detectors.registry.RULE_FORMATS`); the loader tries them in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from detectors.base import Detector
from detectors.errors import RuleError
from detectors.rules.yamlload import LocatedDict, LocatedList

RULE_MATCHING = ("first", "all")


@dataclass(frozen=True, slots=True)
class LoadOptions:
    # Falco's rule_matching: "first" stops at the first matching rule of a Falco ruleset (Falco's default).
    rule_matching: str = "first"

    def __post_init__(self) -> None:
        if self.rule_matching not in RULE_MATCHING:
            raise ValueError(f"rule matching must be one of {', '.join(RULE_MATCHING)}")


class RuleFormat(Protocol):
    name: ClassVar[str]

    @staticmethod
    def accepts(docs: list[Any]) -> bool:
        """Whether these YAML documents (one file) are of this format."""
        ...

    def add(self, path: Path, docs: list[Any]) -> None:
        """Take one file; raise RuleError (file:line) or RuleErrors for what is wrong in it."""
        ...

    def finish(self, options: LoadOptions) -> list[Detector]:
        """Build the detectors of every file added, in load order."""
        ...


def _looks_like_sigma(doc: Any) -> bool:
    return isinstance(doc, dict) and "detection" in doc and "logsource" in doc


class NativeRules:
    """auditwatch's own YAML rules (docs/rules.md): one rule per file, or `rules: [...]`."""

    name: ClassVar[str] = "auditwatch"

    def __init__(self) -> None:
        self._detectors: list[Detector] = []

    @staticmethod
    def accepts(docs: list[Any]) -> bool:
        return len(docs) == 1 and isinstance(docs[0], dict) and not _looks_like_sigma(docs[0])

    def add(self, path: Path, docs: list[Any]) -> None:
        from detectors.registry import RULE_TYPES

        nodes = _rule_nodes(docs[0], str(path))
        for node in nodes:
            rule_type = node.get("type", "match")
            factory = RULE_TYPES.get(rule_type) if isinstance(rule_type, str) else None
            if factory is None:
                raise RuleError(
                    f"unknown rule type {rule_type!r} (known: {', '.join(RULE_TYPES)})",
                    path=str(path), line=node.line_of("type"),
                )  # fmt: skip
            detector = factory(node, path=str(path))
            if len(nodes) == 1 and path.stem != detector.id:
                raise RuleError(
                    f"file name must be the rule id: {detector.id}.yaml", path=str(path), line=node.line_of("id")
                )
            self._detectors.append(detector)

    def finish(self, options: LoadOptions) -> list[Detector]:
        return list(self._detectors)


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
