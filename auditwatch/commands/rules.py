"""`auditwatch rules test|lint`: run the test events rule files carry, and check the rule catalogue (and a site
tuning file: what it does to each rule)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

from auditwatch.startup import EXIT_USAGE
from detectors.base import Described, Detector, SelfTested, Sourced, Stateful, Warns
from detectors.errors import RuleErrors
from detectors.events import AuditEvent
from detectors.loading.formats import LoadOptions
from detectors.loading.testing import run_case
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.tuning.tuning import Tuning, load_tuning


def _load(specs: Sequence[str], out: IO[str]) -> list[Detector] | None:
    try:
        return list(load_rules(specs or ["builtin"], LoadOptions()))
    except RuleErrors as exc:
        for error in exc.errors:
            print(f"error: {error}", file=out)
        print(f"{len(exc.errors)} rule file error(s)", file=out)
        return None


def _tuning(path: str | None, detectors: list[Detector], out: IO[str]) -> tuple[Tuning | None, bool]:
    """The tuning file for these rules (None without one), and whether it loaded; its errors and warnings are
    printed."""
    if path is None:
        return None, True
    try:
        tuning = load_tuning(path, detectors)
    except RuleErrors as exc:
        for error in exc.errors:
            print(f"error: {error}", file=out)
        print(f"{len(exc.errors)} tuning file error(s)", file=out)
        return None, False
    for warning in tuning.warnings:
        print(f"warning: {warning}", file=out)
    return tuning, True


def run_tests(specs: Sequence[str], out: IO[str], *, verbose: bool = False, tuning: str | None = None) -> int:
    """Every inline case of every rule; exit status 1 when a case fails or a rule file does not load, 2 when the
    tuning file does not. With a tuning file, the positive cases it would silence are listed; they still run
    untuned."""
    detectors = _load(specs, out)
    if detectors is None:
        return 1
    tuned, loaded = _tuning(tuning, detectors, out)
    if not loaded:
        return EXIT_USAGE
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
                if tuned is not None and case.expect_alert and not isinstance(detector, Stateful):
                    _show_silenced(tuned, detector, case.name, case.event, out)
            else:
                failed += 1
                print(f"FAIL  {detector.id}: {result.detail}", file=out)
    print(f"{passed} passed, {failed} failed ({len(detectors)} rules, {untested} without inline tests)", file=out)
    return 1 if failed else 0


def _show_silenced(tuning: Tuning, detector: Detector, name: str, event: dict[str, object], out: IO[str]) -> None:
    """`tuned` and the reason when the tuning would keep a single-event rule's positive case out (or change its
    severity)."""
    alerts = Pipeline([detector]).process(AuditEvent(raw=dict(event)))
    before = tuning.suppressed.total()
    kept = tuning.apply(alerts)
    if tuning.suppressed.total() > before:
        reasons = sorted({reason for (_rule, reason) in tuning.suppressed.counts})
        print(f"tuned {detector.id}: {name}: silenced ({', '.join(reasons)})", file=out)
        tuning.suppressed.counts.clear()
    elif any(a.details.get("severity_before_tuning") for a in kept):
        print(f"tuned {detector.id}: {name}: severity {kept[0].severity.label}", file=out)


def _describe(tuning: Tuning, out: IO[str]) -> None:
    """What the tuning file does: each of its entries, then each rule it touches."""
    print(f"tuning {tuning.path}:", file=out)
    for entry in tuning.entries:
        print(f"  {entry}", file=out)
    for rule_id, effects in sorted(tuning.effects.items()):
        print(f"  {rule_id}: {'; '.join(effects)}", file=out)


def lint(specs: Sequence[str], out: IO[str], *, tuning: str | None = None) -> int:
    """Loadable, and each rule documented and tested both ways; every load warning (fields no audit event
    has, Sigma rules that can never match, tuning entries naming no loaded rule) counts as a problem. A
    malformed tuning file is a configuration error, as for every command: exit status 2."""
    detectors = _load(specs, out)
    if detectors is None:
        return 1
    tuned, loaded = _tuning(tuning, detectors, out)
    if not loaded:
        return EXIT_USAGE
    problems = len(tuned.warnings) if tuned is not None else 0
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
    if tuned is not None:
        _describe(tuned, out)
    print(f"{len(detectors)} rules, {problems} problem(s)", file=out)
    return 1 if problems else 0
