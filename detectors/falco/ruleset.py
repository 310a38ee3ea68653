"""The Falco ruleset detector: every enabled k8s_audit rule of the loaded files, indexed, with Falco's output.

`detectors.falco.format` builds it; see docs/falco.md for what is supported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from detectors.alerts import Alert, Guidance, Severity, make_alert
from detectors.base import RuleSource
from detectors.events import AuditEvent
from detectors.falco.condition import Cond, Getter, field_getter
from detectors.falco.fields import rawtime_ns, scalar_field
from detectors.falco.syntax import FieldRef
from detectors.falco.values import Value

# priority -> (Falco's spelling, auditwatch severity)
PRIORITIES: dict[str, tuple[str, Severity]] = {
    "emergency": ("Emergency", Severity.CRITICAL),
    "alert": ("Alert", Severity.CRITICAL),
    "critical": ("Critical", Severity.CRITICAL),
    "error": ("Error", Severity.HIGH),
    "warning": ("Warning", Severity.MEDIUM),
    "notice": ("Notice", Severity.LOW),
    "informational": ("Informational", Severity.INFO),
    "info": ("Informational", Severity.INFO),
    "debug": ("Debug", Severity.INFO),
}
SOURCE = "k8s_audit"


# ---- output --------------------------------------------------------------------------------------------

_OUT_FIELD = re.compile(r"%([A-Za-z_][A-Za-z0-9_.]*)(\[[^\]]*\])?")
Output = tuple[tuple[str | tuple[str, Getter, bool], ...], tuple[tuple[str, Getter, bool], ...]]


def compile_output(text: str) -> Output:
    """`%field` / `%field[arg]` placeholders -> (parts, fields). Unknown fields are load errors."""
    parts: list[str | tuple[str, Getter, bool]] = []
    fields: dict[str, tuple[str, Getter, bool]] = {}
    pos = 0
    for m in _OUT_FIELD.finditer(text):
        name, arg = m.group(1), m.group(2)
        trailing = ""
        while name.endswith(".") and arg is None:  # "%ka.uri." at a sentence end
            name, trailing = name[:-1], "." + trailing
        parts.append(text[pos : m.start()])
        ref = FieldRef(name, arg[1:-1] if arg else None)
        key = ref.key()
        if key not in fields:
            getter, is_list = field_getter(ref)
            fields[key] = (key, getter, is_list)
        parts.append(fields[key])
        if trailing:
            parts.append(trailing)
        pos = m.end()
    parts.append(text[pos:])
    return tuple(p for p in parts if p != ""), tuple(fields.values())


def _show(value: Value) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return "(" + ",".join(value) + ")"
    return value


def iso_ns(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}+0000"


# ---- the detector --------------------------------------------------------------------------------------


@dataclass
class CompiledRule:
    name: str
    rule_id: str
    cond: Cond
    output: Output
    priority: str
    severity: Severity
    tags: tuple[str, ...]
    mitre: tuple[str, ...]
    stages: frozenset[str] | None  # index hints: the values the condition requires, None = any
    resources: frozenset[str] | None
    verbs: frozenset[str] | None
    warnings: tuple[str, ...] = ()  # `file:line: ...`: fields no audit event has
    description: str = ""  # the rule's `desc`

    def applies(self, stage: Value, resource: Value, verb: Value) -> bool:
        return (
            (self.stages is None or stage in self.stages)
            and (self.resources is None or resource in self.resources)
            and (self.verbs is None or verb in self.verbs)
        )


_stage_of = scalar_field("stage")
_verb_of = scalar_field("verb")
_resource_of = scalar_field("objectRef", "resource")
_EMPTY: dict[str, Any] = {}
_INDEX_LIMIT = 4096


class FalcoRuleset:
    """Every enabled k8s_audit rule of the loaded Falco files, as one detector.

    Rules run in load order; with `rule_matching="first"` (Falco's default) the first matching rule wins,
    with "all" every matching rule alerts. Rules are indexed by the stage, resource and verb their
    condition requires, so an event only meets the rules that could match it.
    """

    stages: frozenset[str] | None = None
    resources: frozenset[str] | None = None
    rule_format = "falco"  # `Catalogued`

    def __init__(
        self,
        rules: Sequence[CompiledRule],
        rule_matching: str = "first",
        files: Sequence[str] = (),
        warnings: Sequence[str] = (),
    ) -> None:
        self.id = "falco"
        self.rules = tuple(rules)
        self.first = rule_matching == "first"
        self.files = tuple(files)
        self.source = RuleSource(", ".join(files))  # `Sourced`: the files it was built from
        self.warnings = tuple(dict.fromkeys(warnings))  # `Warns`; once per line, however often a rule reads it
        self._index: dict[tuple[Value, Value, Value], tuple[CompiledRule, ...]] = {}

    def rule_severities(self) -> dict[str, Severity]:
        """`Catalogued`: every rule of the set."""
        return {rule.rule_id: rule.severity for rule in self.rules}

    def without(self, rule_ids: frozenset[str]) -> FalcoRuleset:
        """`RuleSet`: the ruleset without these rules, as if they were disabled in the files (a disabled rule no
        longer stops the search with `rule_matching: first`)."""
        kept = [rule for rule in self.rules if rule.rule_id not in rule_ids]
        return FalcoRuleset(kept, "first" if self.first else "all", self.files, self.warnings)

    def candidates(self, raw: dict[str, Any]) -> tuple[CompiledRule, ...]:
        key = (_stage_of(raw), _resource_of(raw), _verb_of(raw))
        found = self._index.get(key)
        if found is None:
            found = tuple(r for r in self.rules if r.applies(*key))
            if len(self._index) < _INDEX_LIMIT:
                self._index[key] = found
        return found

    def detect(self, event: AuditEvent) -> list[Alert]:
        raw = event.raw
        if not raw.get("auditID"):  # the plugin extracts nothing from an event without auditID
            event = AuditEvent(raw=_EMPTY, origin=event.origin)
            raw = _EMPTY
        alerts: list[Alert] = []
        for rule in self.candidates(raw):
            if rule.cond(event):
                alerts.append(self._alert(rule, event))
                if self.first:
                    break
        return alerts

    def _alert(self, rule: CompiledRule, event: AuditEvent) -> Alert:
        parts, fields = rule.output
        ns = rawtime_ns(event.raw)
        values: dict[str, str | None] = {key: _show(get(event)) for key, get, _ in fields}
        message = "".join(p if isinstance(p, str) else (values[p[0]] or "<NA>") for p in parts)
        output_fields: dict[str, Any] = {"evt.time": ns}
        output_fields.update(values)
        time_text = iso_ns(ns) if ns is not None else "<NA>"
        details = {
            "priority": rule.priority,
            "output": f"{time_text}: {rule.priority} {message}",
            "output_fields": output_fields,
            "tags": list(rule.tags),
            "source": SOURCE,
        }
        return make_alert(
            rule_id=rule.rule_id,
            rule_name=rule.name,
            severity=rule.severity,
            mitre=rule.mitre,
            message=message,
            event=event,
            details=details,
            guidance=Guidance(description=rule.description),
        )
