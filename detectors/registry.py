"""The rule file formats a load knows, tried in this order on each file; and `load_rules`, the loader bound
to them. Data, not if-chains: a new file format is one entry here (a new native rule type: one entry in
`detectors.rules.native.RULE_TYPES`)."""

from __future__ import annotations

from collections.abc import Sequence

from detectors.base import Detector
from detectors.falco import FalcoRules
from detectors.loading.formats import LoadOptions, RuleFormat
from detectors.loading.loader import load_rule_files
from detectors.rules.native import NativeRules
from detectors.sigma import SigmaRules

RULE_FORMATS: tuple[type[RuleFormat], ...] = (
    NativeRules,
    FalcoRules,
    SigmaRules,
)


def load_rules(specs: Sequence[str] | None = None, options: LoadOptions | None = None) -> list[Detector]:
    """Load every rule named by `specs` (default: the built-in pack) in the known formats; collect all
    errors, then raise RuleErrors."""
    return load_rule_files(specs, RULE_FORMATS, options)
