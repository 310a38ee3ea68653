"""`auditwatch rules test|lint`: run the test events rule files carry, and check the rule catalogue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

from detectors.base import Described, Detector, SelfTested, Sourced, Warns
from detectors.errors import RuleErrors
from detectors.loading.formats import LoadOptions
from detectors.loading.testing import run_case
from detectors.registry import load_rules


def _load(specs: Sequence[str], out: IO[str]) -> list[Detector] | None:
    try:
        return list(load_rules(specs or ["builtin"], LoadOptions()))
    except RuleErrors as exc:
        for error in exc.errors:
            print(f"error: {error}", file=out)
        print(f"{len(exc.errors)} rule file error(s)", file=out)
        return None


def run_tests(specs: Sequence[str], out: IO[str], *, verbose: bool = False) -> int:
    """Every inline case of every rule; exit status 1 when a case fails or a file does not load."""
    detectors = _load(specs, out)
    if detectors is None:
        return 1
    passed = failed = untested = 0
    for detector in detectors:
        if not isinstance(detector, SelfTested) or not detector.tests:
            untested += 1
            continue
        for case in detector.tests:
            result = run_case(detector, case, path=detector.source.path)
            if result.ok:
                passed += 1
                if verbose:
                    print(f"ok    {detector.id}: {case.name}", file=out)
            else:
                failed += 1
                print(f"FAIL  {detector.id}: {result.detail}", file=out)
    print(f"{passed} passed, {failed} failed ({len(detectors)} rules, {untested} without inline tests)", file=out)
    return 1 if failed else 0


def lint(specs: Sequence[str], out: IO[str]) -> int:
    """Loadable, and each rule documented and tested both ways; every load warning (fields no audit event
    has, Sigma rules that can never match) counts as a problem."""
    detectors = _load(specs, out)
    if detectors is None:
        return 1
    problems = 0
    for detector in detectors:
        where = str(detector.source) if isinstance(detector, Sourced) else detector.id
        if isinstance(detector, Warns):
            for warning in detector.warnings:
                print(f"warning: {warning}", file=out)
                problems += 1
        if not isinstance(detector, SelfTested):
            continue  # Falco and Sigma files carry no inline tests; nothing more to check
        cases = detector.tests
        if not any(c.expect_alert for c in cases):
            print(f"{where}: {detector.id}: no positive test (expect: alert)", file=out)
            problems += 1
        if not any(not c.expect_alert for c in cases):
            print(f"{where}: {detector.id}: no negative test (expect: none)", file=out)
            problems += 1
        if not (isinstance(detector, Described) and detector.false_positives):
            print(f"{where}: {detector.id}: no false_positives notes", file=out)
            problems += 1
    print(f"{len(detectors)} rules, {problems} problem(s)", file=out)
    return 1 if problems else 0
