"""Load rule files: the built-in pack, single files or directories. Every error names its file and line."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from detectors.base import Detector
from detectors.errors import RuleError, RuleErrors
from detectors.rules.yamlload import LocatedDict, LocatedList, load_yaml_file

BUILTIN = "builtin"
BUILTIN_DIR = Path(__file__).parent / "builtin"
RULE_SUFFIXES = (".yaml", ".yml")


def rule_files(spec: str) -> list[Path]:
    """`builtin`, a file, or a directory (its *.yaml/*.yml files, recursively, in name order)."""
    path = BUILTIN_DIR if spec == BUILTIN else Path(spec)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())
    if path.is_file():
        return [path]
    raise RuleError("no such rule file or directory", path=spec)


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
    if isinstance(doc, LocatedList):
        raise RuleError(
            "this looks like a Falco rules file (a YAML list); Falco rule files are not supported yet",
            path=path, line=doc.line,
        )  # fmt: skip
    raise RuleError("a rule file holds a rule mapping (or 'rules: [...]')", path=path, line=1)


def load_file(path: Path) -> list[Detector]:
    from detectors.registry import RULE_TYPES

    doc = load_yaml_file(path)
    detectors: list[Detector] = []
    nodes = _rule_nodes(doc, str(path))
    for node in nodes:
        if "logsource" in node and "detection" in node:
            raise RuleError(
                "this looks like a Sigma rule; Sigma rules are not supported yet", path=str(path), line=node.line
            )
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
        detectors.append(detector)
    return detectors


def load_rules(specs: Sequence[str] | None = None) -> list[Detector]:
    """Load every rule named by `specs` (default: the built-in pack); collect all errors, then raise."""
    errors: list[RuleError] = []
    detectors: list[Detector] = []
    seen: dict[str, str] = {}
    for spec in specs or [BUILTIN]:
        try:
            files = rule_files(spec)
        except RuleError as exc:
            errors.append(exc)
            continue
        for path in files:
            try:
                loaded = load_file(path)
            except RuleError as exc:
                errors.append(exc)
                continue
            for detector in loaded:
                if detector.id in seen:
                    where = seen[detector.id]
                    errors.append(RuleError(f"duplicate rule id {detector.id!r} (also in {where})", path=str(path)))
                    continue
                seen[detector.id] = str(path)
                detectors.append(detector)
    if errors:
        raise RuleErrors(errors)
    return detectors


def describe(detectors: Iterable[Detector]) -> str:
    return ", ".join(d.id for d in detectors)
