"""Kubernetes audit policies: load, validate and evaluate them exactly as the kube-apiserver does.

Sources: `k8s.io/apiserver` `pkg/audit/policy/reader.go` (loading: `parse`), `checker.go` (evaluation:
`evaluate`) and `pkg/apis/audit/validation` (validation: `parse`); the types are in `model`, the lints and
blind-rule analysis of `auditwatch policy check` in `check`. Pure: text in, decisions out. This module
only re-exports the public names.
"""

from __future__ import annotations

from detectors.policy.evaluate import apply_policy, evaluate, evaluate_event, path_matches, rule_matches
from detectors.policy.model import (
    API_VERSION,
    LEVEL_RANK,
    LEVELS,
    Decision,
    GroupResources,
    Policy,
    PolicyError,
    PolicyRule,
    RequestAttributes,
    field_selector_name,
)
from detectors.policy.parse import load_policy, parse_policy

__all__ = [
    "API_VERSION",
    "LEVELS",
    "LEVEL_RANK",
    "Decision",
    "GroupResources",
    "Policy",
    "PolicyError",
    "PolicyRule",
    "RequestAttributes",
    "apply_policy",
    "evaluate",
    "evaluate_event",
    "field_selector_name",
    "load_policy",
    "parse_policy",
    "path_matches",
    "rule_matches",
]
