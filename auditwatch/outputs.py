"""Alert output shapes for `replay --output`: auditwatch's own, and Falco's JSON alert (for falcosidekick)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import orjson

from detectors.alerts import Alert, Severity

# auditwatch severity -> Falco priority, for alerts that did not come from a Falco rule
FALCO_PRIORITY = {
    Severity.CRITICAL: "Critical",
    Severity.HIGH: "Error",
    Severity.MEDIUM: "Warning",
    Severity.LOW: "Notice",
    Severity.INFO: "Informational",
}


def auditwatch_json(alert: Alert) -> dict[str, Any]:
    return alert.summary()


def falco_json(alert: Alert, hostname: str | None = None) -> dict[str, Any]:
    """Falco's `json_output` alert: time, rule, priority, source, output, output_fields, tags, hostname.

    Alerts of Falco rules carry Falco's own priority, rendered output and fields (in `details`); others get
    the equivalent `ka.*` fields of the event.
    """
    details = alert.details
    fields = details.get("output_fields") or {
        "evt.time": alert.event_time.isoformat().replace("+00:00", "Z"),
        "ka.auditid": alert.audit_id,
        "ka.user.name": alert.user,
        "ka.verb": alert.verb,
        "ka.uri": alert.event.get("requestURI"),
        "ka.target.resource": alert.resource,
        "ka.target.subresource": alert.subresource or None,
        "ka.target.namespace": alert.namespace or None,
        "ka.target.name": alert.name or None,
        "ka.sourceips": list(alert.source_ips),
    }
    return {
        "time": alert.event_time.isoformat().replace("+00:00", "Z"),
        "rule": alert.rule_name,
        "priority": details.get("priority") or FALCO_PRIORITY[alert.severity],
        "source": details.get("source") or "k8s_audit",
        "output": details.get("output") or f"{alert.event_time.isoformat()}: {alert.message}",
        "output_fields": fields,
        "tags": list(details.get("tags") or alert.mitre),
        "hostname": hostname or socket.gethostname(),
    }


OUTPUT_FORMATS: dict[str, Callable[[Alert], dict[str, Any]]] = {
    "auditwatch": auditwatch_json,
    "falco": falco_json,
}


def render(alert: Alert, output_format: str) -> bytes:
    return orjson.dumps(OUTPUT_FORMATS[output_format](alert)) + b"\n"
