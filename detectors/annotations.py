"""Annotation keys the apiserver's authorizer writes on audit events, read by several detectors."""

from __future__ import annotations

DECISION_ANNOTATION = "authorization.k8s.io/decision"  # allow | forbid
REASON_ANNOTATION = "authorization.k8s.io/reason"
