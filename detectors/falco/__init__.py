"""Falco k8s_audit rule files, loaded unmodified and evaluated natively (see docs/falco.md)."""

from __future__ import annotations

from detectors.falco.format import FalcoRules
from detectors.falco.ruleset import FalcoRuleset

__all__ = ["FalcoRules", "FalcoRuleset"]
