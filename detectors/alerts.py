"""Alerts: what a detector says about an event. Frozen, with an id that is the same every time."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from detectors.events import AuditEvent
from detectors.limits import MAX_ALERT_TEXT_BYTES, cap_items, cap_key, cap_strings, cap_text, truncate_event
from detectors.redact import redact_argv, redact_event, redact_string, redact_text_in

DEFAULT_SUPPRESS_S = 3600.0


def group_key_of(event: AuditEvent, details: Mapping[str, Any] | None) -> str:
    """Who and where: the principal and namespace, plus a stateful rule's own key (e.g. a source IP).
    Stored with the alert group, so it is built from redacted values (details are redacted by the caller)."""
    key = details.get("key") if details else None
    extra = "" if key is None else json.dumps(key, sort_keys=True, default=str)
    return cap_key("\x1f".join((redact_string(event.principal) or "-", redact_string(event.namespace) or "-", extra)))


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"severity {text!r} is not one of {', '.join(s.label for s in cls)}") from None


def alert_id(rule_id: str, event: AuditEvent) -> str:
    """Deterministic id: the same rule on the same event always gives the same id.

    auditID alone is not unique (clients may send their own Audit-ID header), so the stage and both
    timestamps take part too: a retried or replayed event keeps its id, a forged auditID does not
    collide with an earlier alert.
    """
    raw = event.raw
    parts = (
        rule_id,
        event.audit_id,
        event.stage,
        str(raw.get("requestReceivedTimestamp") or ""),
        event.stage_timestamp,
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    rule_id: str
    rule_name: str
    severity: Severity
    mitre: tuple[str, ...]
    message: str
    event_time: datetime
    audit_id: str
    stage: str
    user: str
    groups: tuple[str, ...]
    impersonated_user: str | None
    source_ips: tuple[str, ...]
    user_agent: str
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    origin: str
    event: Mapping[str, Any]  # redacted copy of the event
    # format-specific extras, JSON-ready: Falco's priority/output/output_fields/tags/source, Sigma's level...
    details: Mapping[str, Any] = field(default_factory=dict)
    # alerts of one rule with the same group key within `suppress_s` of each other fold into one alert group
    group_key: str = ""
    suppress_s: float = DEFAULT_SUPPRESS_S

    def summary(self) -> dict[str, Any]:
        """JSON-ready fields (no event body), as replay prints them and the REST API lists them."""
        return {
            "id": self.id,
            "rule": self.rule_name,
            "rule_id": self.rule_id,
            "severity": self.severity.label,
            "mitre": list(self.mitre),
            "message": self.message,
            "time": self.event_time.isoformat().replace("+00:00", "Z"),
            "audit_id": self.audit_id,
            "stage": self.stage,
            "user": self.user,
            "groups": list(self.groups),
            "impersonated_user": self.impersonated_user,
            "source_ips": list(self.source_ips),
            "user_agent": self.user_agent,
            "verb": self.verb,
            "resource": self.resource,
            "subresource": self.subresource,
            "namespace": self.namespace,
            "name": self.name,
            "origin": self.origin,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class Guidance:
    """What a rule tells whoever reads its alerts: what it detects (`description`), what to check and how to
    contain (`response`), and when it fires on benign activity (`false_positives`). Rule text, not event data."""

    description: str = ""
    response: str = ""
    false_positives: str = ""

    def details(self) -> dict[str, str]:
        """The non-empty texts, each on one line, as alert details."""
        texts = (("description", self.description), ("response", self.response),
                 ("false_positives", self.false_positives))  # fmt: skip
        return {key: " ".join(text.split()) for key, text in texts if text}


def make_alert(
    *,
    rule_id: str,
    rule_name: str,
    severity: Severity,
    mitre: tuple[str, ...],
    message: str,
    event: AuditEvent,
    details: Mapping[str, Any] | None = None,
    suppress_s: float = DEFAULT_SUPPRESS_S,
    guidance: Guidance | None = None,
) -> Alert:
    """An alert on `event`. Everything taken from the event is redacted here, once for every rule format: the
    columns, the message (rendered from the event by the rule), the details (Falco's output and output_fields,
    the decoded exec `command`) and the event itself; the id comes from the raw event, so it stays the same.
    Each is then capped (detectors.limits: a few KiB a string, the stored event 1 MiB), after redaction so that
    no cut hides a credential from it. The rule's `guidance` joins the details as written."""

    def clean(text: str) -> str:
        return cap_text(redact_string(text))

    impersonated = event.impersonated_username
    safe_details = redact_text_in(dict(details or {}))
    executed = event.get("$exec")
    if executed:
        safe_details["command"] = redact_argv(executed["command"])
    group_key = group_key_of(event, safe_details)  # of the whole key: values cut alike stay apart
    safe_details = cap_strings(safe_details)
    if guidance is not None:
        safe_details.update(guidance.details())
    return Alert(
        id=alert_id(rule_id, event),
        rule_id=rule_id,
        rule_name=rule_name,
        severity=severity,
        mitre=mitre,
        message=cap_text(redact_string(message), MAX_ALERT_TEXT_BYTES),
        event_time=event.time,
        audit_id=clean(event.audit_id),
        stage=clean(event.stage),
        user=clean(event.username),
        groups=cap_items(event.groups, redact_string),
        impersonated_user=None if impersonated is None else clean(impersonated),
        source_ips=cap_items(event.source_ips, redact_string),
        user_agent=clean(event.user_agent),
        verb=clean(event.verb),
        resource=clean(event.resource),
        subresource=clean(event.subresource),
        namespace=clean(event.namespace),
        name=clean(event.name),
        origin=event.origin,  # ours: the file and line, or the webhook item
        event=truncate_event(redact_event(event.raw)),  # the stored copy: at most MAX_STORED_EVENT_BYTES
        details=safe_details,
        group_key=group_key,
        suppress_s=suppress_s,
    )
