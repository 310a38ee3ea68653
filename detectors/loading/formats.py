"""What a rule file format is to the loader: it recognises its files, collects them in load order, then
builds detectors.

Formats see every file of a load before building, because some (Falco) let later files modify earlier ones.
The list of formats is data (`detectors.registry.RULE_FORMATS`); the loader tries them in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from detectors.base import Detector

RULE_MATCHING = ("first", "all")


@dataclass(frozen=True, slots=True)
class LoadOptions:
    # Falco's rule_matching: "first" stops at the first matching rule of a Falco ruleset (Falco's default).
    rule_matching: str = "first"
    # rules with a `baseline:` learn for this long (event time) before a first-seen term pages
    baseline_learning_s: float = 7 * 86400.0

    def __post_init__(self) -> None:
        if self.rule_matching not in RULE_MATCHING:
            raise ValueError(f"rule matching must be one of {', '.join(RULE_MATCHING)}")
        if not 0 <= self.baseline_learning_s <= 365 * 86400:  # also refuses nan
            raise ValueError("the baseline learning period must be between 0 and 365 days")


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
