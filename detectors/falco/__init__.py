"""Falco k8s_audit rule files, loaded unmodified and evaluated natively (see docs/falco.md)."""

from __future__ import annotations

from detectors.falco.ruleset import FalcoRules, FalcoRuleset

__all__ = ["FalcoRules", "FalcoRuleset"]
