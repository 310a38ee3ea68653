"""`auditwatch policy check POLICY [--rules PATH]... [--json]`: validation, lints, blind rules."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from auditwatch.startup import refuse
from detectors.base import Detector, SelfTested
from detectors.errors import RuleError, RuleErrors
from detectors.policy import parse_policy
from detectors.policy.check import BlindRule, CheckResult, blind_reason, lint


def _rule_condition(detector: Detector) -> tuple[bool, Any]:
    """(analysable, the `match:` mapping) of a native rule, read back from its file."""
    from detectors.loading.yamlload import load_yaml_documents, read_rule_text

    if not isinstance(detector, SelfTested):  # native rules carry tests; Falco, Sigma: no `match:` to read
        return False, None
    path = detector.source.path
    if not path.endswith((".yaml", ".yml")):
        return False, None
    try:
        docs = load_yaml_documents(read_rule_text(Path(path)), path=str(path))
    except (RuleError, OSError):
        return False, None
    for doc in docs:
        nodes = doc.get("rules") if isinstance(doc, dict) and "rules" in doc and "id" not in doc else [doc]
        for node in nodes or []:
            if isinstance(node, dict) and node.get("id") == detector.id and isinstance(node.get("match"), dict):
                return True, node["match"]
    return False, None


def check_policy(text: str, source: str, rule_specs: Sequence[str] | None) -> CheckResult:
    from detectors.registry import load_rules

    result = CheckResult()
    policy, errors, warnings = parse_policy(text, source=source)
    result.errors.extend(errors)
    result.warnings.extend(warnings)
    if policy is None:
        return result
    result.warnings.extend(lint(policy))
    try:
        detectors = load_rules(list(rule_specs) if rule_specs else None)
    except RuleErrors as exc:
        result.errors.extend(f"cannot load rules: {e}" for e in exc.errors)
        return result
    for detector in detectors:
        analysable, cond = _rule_condition(detector)
        stages, resources = detector.stages, detector.resources
        if not analysable:
            result.not_analysed.append(detector.id)  # Falco, Sigma, models: stages and resources only
        reason = blind_reason(policy, cond, stages, resources)
        if reason is not None:
            suffix = "" if analysable else " (stages and resources only: its conditions were not analysed)"
            result.blind_rules.append(BlindRule(detector.id, reason + suffix))
    return result


def run_check(policy_path: str, rule_specs: Sequence[str] | None, *, as_json: bool, out: IO[str]) -> int:
    try:
        text = Path(policy_path).read_text()
    except OSError as exc:
        refuse(f"cannot read policy {policy_path}: {exc.strerror}")
    except UnicodeDecodeError:
        refuse(f"cannot read policy {policy_path}: not UTF-8 text")
    result = check_policy(text, policy_path, rule_specs)
    if as_json:
        doc = {
            "errors": result.errors, "warnings": result.warnings,
            "blind_rules": [{"rule": b.rule, "reason": b.reason} for b in result.blind_rules],
            "not_analysed": result.not_analysed,
        }  # fmt: skip
        out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        lines = [f"{policy_path}: {'INVALID' if result.errors else 'valid'} audit policy"]
        lines += [f"error: {e}" for e in result.errors]
        lines += [f"warning: {w}" for w in result.warnings]
        if not result.errors:
            if result.blind_rules:
                lines.append(f"{len(result.blind_rules)} rule(s) can never fire under this policy:")
                lines += [f"  {b.rule}: {b.reason}" for b in result.blind_rules]
            else:
                lines.append("every rule can fire under this policy")
            if result.not_analysed:
                lines.append(f"conditions not analysed (stages/resources only): {', '.join(result.not_analysed)}")
        out.write("\n".join(lines) + "\n")
    return 1 if result.errors else 0
