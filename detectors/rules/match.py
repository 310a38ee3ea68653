"""`type: match` — a single-event rule: stages, condition, allowlist, message."""

from __future__ import annotations

from dataclasses import dataclass, field

from detectors.alerts import Alert, make_alert
from detectors.events import AuditEvent
from detectors.loading.yamlload import LocatedDict
from detectors.rules.conditions import Predicate, key_condition
from detectors.rules.header import NativeRuleAttributes, RuleHeader, parse_header_and_match, render_message
from detectors.scope import UNKNOWN, KeyCondition, Scope


@dataclass(frozen=True, slots=True)
class MatchRule(NativeRuleAttributes):
    header: RuleHeader
    resources: frozenset[str] | None
    predicate: Predicate = field(repr=False, compare=False)
    condition: KeyCondition = field(default=UNKNOWN, repr=False, compare=False)  # `match:` on the routing key

    @property
    def scope(self) -> Scope:
        return Scope(self.header.stages, self.resources, self.condition)

    def detect(self, event: AuditEvent) -> list[Alert]:
        header = self.header
        if event.raw.get("stage") not in header.stages:
            return []
        if not self.predicate(event) or header.allowlist.allows(event):
            return []
        return [
            make_alert(
                rule_id=header.id,
                rule_name=header.name,
                severity=header.severity,
                mitre=header.mitre,
                message=render_message(header.message, event) if header.message else header.name,
                event=event,
                suppress_s=header.suppress_s,
                guidance=header.guidance,
            )
        ]

    @classmethod
    def from_node(cls, node: LocatedDict, *, path: str) -> MatchRule:
        header, (predicate, resources) = parse_header_and_match(node, path=path)
        return cls(header, resources, predicate, key_condition(node["match"]))
