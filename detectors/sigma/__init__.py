"""Sigma rules (`logsource: product: kubernetes, service: audit`) evaluated directly on audit events."""

from detectors.sigma.rules import SigmaDetector, SigmaRules, build_detector

__all__ = ["SigmaDetector", "SigmaRules", "build_detector"]
