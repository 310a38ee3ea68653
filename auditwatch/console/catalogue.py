"""The rules a process has loaded, as the console lists them: one entry per rule, whatever its format."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from detectors.alerts import Severity
from detectors.base import Described, Detector, Sourced
from detectors.falco.ruleset import FalcoRuleset


@dataclass(frozen=True)
class RuleInfo:
    id: str
    name: str
    severity: str  # its label; "" when the format gives none (each alert then carries its own)
    kind: str  # match, threshold, sequence, anomaly, sigma, falco ...
    source: str
    description: str = ""
    response: str = ""  # what to check and how to contain
    false_positives: str = ""
    mitre: tuple[str, ...] = ()

    @property
    def source_files(self) -> str:
        """The source's file names (and line), without their directories: the full path is `source`."""
        return ", ".join(Path(part.strip()).name for part in self.source.split(",")) if self.source else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _kind(detector: Detector) -> str:
    """A rule's type from its class: MatchRule -> match, DistinctCountRule -> distinct-count, SigmaDetector -> sigma."""
    name = re.sub(r"(Rule|Detector)$", "", type(detector).__name__)
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower() or type(detector).__name__


def _severity(detector: Detector) -> str:
    severity = getattr(detector, "severity", None)
    return severity.label if isinstance(severity, Severity) else ""


def _mitre(detector: Detector) -> tuple[str, ...]:
    mitre = getattr(detector, "mitre", ())
    return tuple(str(t) for t in mitre) if isinstance(mitre, tuple) else ()


def catalogue(detectors: Sequence[Detector]) -> dict[str, RuleInfo]:
    """Rule id -> what the console shows of it; a Falco ruleset is listed rule by rule."""
    rules: dict[str, RuleInfo] = {}
    for detector in detectors:
        if isinstance(detector, FalcoRuleset):
            for rule in detector.rules:
                rules[rule.rule_id] = RuleInfo(
                    rule.rule_id, rule.name, rule.severity.label, "falco", detector.source.path,
                    _one_line(rule.description), mitre=rule.mitre,
                )  # fmt: skip
        elif isinstance(detector, Described):
            rules[detector.id] = RuleInfo(
                detector.id, detector.name, _severity(detector), _kind(detector), str(detector.source),
                _one_line(detector.description), _one_line(detector.response), _one_line(detector.false_positives),
                _mitre(detector),
            )  # fmt: skip
        else:
            source = str(detector.source) if isinstance(detector, Sourced) else ""
            rules[detector.id] = RuleInfo(detector.id, detector.id, _severity(detector), _kind(detector), source)
    return rules
