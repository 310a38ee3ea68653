"""Rows of the alert store: alerts and rejected items to table rows, and rows back to API dictionaries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from api.tables import alerts_table, fit, groups_table
from detectors.alerts import Alert, Severity
from detectors.events import Rejected
from detectors.redact import redact_text_in, redacted_json

MAX_QUARANTINE_PAYLOAD = 16 * 1024  # bytes of redacted JSON kept of one rejected item; the rest is marked truncated


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime) -> str:
    return utc(value).isoformat().replace("+00:00", "Z")


def alert_row(alert: Alert, detected_at: datetime) -> dict[str, Any]:
    return fit(
        alerts_table,
        {
            "id": alert.id,
            "rule_id": alert.rule_id,
            "rule_name": alert.rule_name,
            "severity": alert.severity.label,
            "severity_rank": int(alert.severity),
            "mitre": list(alert.mitre),
            "message": alert.message,
            "event_time": alert.event_time,
            "detected_at": detected_at,
            "audit_id": alert.audit_id,
            "stage": alert.stage,
            "user_name": alert.user,
            "groups": list(alert.groups),
            "impersonated_user": alert.impersonated_user,
            "source_ips": list(alert.source_ips),
            "user_agent": alert.user_agent,
            "verb": alert.verb,
            "resource": alert.resource,
            "subresource": alert.subresource,
            "namespace": alert.namespace,
            "name": alert.name,
            "origin": alert.origin,
            "event": dict(alert.event),
            "details": dict(alert.details),
        },
    )


def row_to_dict(row: Any, *, with_event: bool) -> dict[str, Any]:
    m = row._mapping
    out = {
        "id": m["id"],
        "rule": m["rule_name"],
        "rule_id": m["rule_id"],
        "severity": m["severity"],
        "mitre": list(m["mitre"] or []),
        "message": m["message"],
        "time": iso(m["event_time"]),
        "detected_at": iso(m["detected_at"]),
        "audit_id": m["audit_id"],
        "stage": m["stage"],
        "user": m["user_name"],
        "groups": list(m["groups"] or []),
        "impersonated_user": m["impersonated_user"],
        "source_ips": list(m["source_ips"] or []),
        "user_agent": m["user_agent"],
        "verb": m["verb"],
        "resource": m["resource"],
        "subresource": m["subresource"],
        "namespace": m["namespace"],
        "name": m["name"],
        "origin": m["origin"],
        "details": dict(m["details"] or {}),
        "group_id": m["group_id"],
        "status": m["status"],
        "assignee": m["assignee"],
    }
    if with_event:
        out["event"] = m["event"]
    return out


def alert_from_row(row: Any) -> Alert:
    """A stored alert as an Alert again (its group key and suppression window are its group's, not kept here)."""
    m = row._mapping
    return Alert(
        id=m["id"], rule_id=m["rule_id"], rule_name=m["rule_name"], severity=Severity.parse(m["severity"]),
        mitre=tuple(m["mitre"] or ()), message=m["message"], event_time=utc(m["event_time"]), audit_id=m["audit_id"],
        stage=m["stage"], user=m["user_name"], groups=tuple(m["groups"] or ()),
        impersonated_user=m["impersonated_user"], source_ips=tuple(m["source_ips"] or ()),
        user_agent=m["user_agent"], verb=m["verb"], resource=m["resource"],
        subresource=m["subresource"], namespace=m["namespace"], name=m["name"], origin=m["origin"],
        event=dict(m["event"] or {}), details=dict(m["details"] or {}),
    )  # fmt: skip


def group_to_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "rule": row.rule_name, "rule_id": row.rule_id, "severity": row.severity, "user": row.user_name,
        "namespace": row.namespace, "first_seen": iso(row.first_seen), "last_seen": iso(row.last_seen),
        "count": row.count, "suppress_s": row.suppress_s, "last_alert_id": row.last_alert_id,
        "last_message": row.last_message, "status": row.status, "assignee": row.assignee,
    }  # fmt: skip


def new_group_row(alert: Alert, group_id: str) -> dict[str, Any]:
    """The row of a group that a new alert opens."""
    return fit(groups_table, {
        "id": group_id, "rule_id": alert.rule_id, "rule_name": alert.rule_name,
        "severity": alert.severity.label, "severity_rank": int(alert.severity), "group_key": alert.group_key,
        "user_name": alert.impersonated_user or alert.user, "namespace": alert.namespace,
        "first_seen": alert.event_time, "last_seen": alert.event_time, "count": 1,
        "suppress_s": int(alert.suppress_s), "last_alert_id": alert.id, "last_message": alert.message,
    })  # fmt: skip


def receipt_to_dict(row: Any) -> dict[str, Any]:
    return {
        "audit_id": row.audit_id, "stage": row.stage, "stage_timestamp": row.stage_timestamp,
        "received_at": iso(row.received_at),
    }  # fmt: skip


def quarantine_row(item: Rejected, received_at: datetime) -> dict[str, Any]:
    """A rejected item as stored: never raw, its payload redacted and cut (the reason is redacted by Rejected)."""
    payload, truncated = redacted_json(item.payload, MAX_QUARANTINE_PAYLOAD)
    return {
        "received_at": received_at,
        "origin": item.origin,
        "reason": item.reason,
        "payload": payload,
        "payload_truncated": truncated,
    }


def quarantined_to_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "received_at": iso(row.received_at), "origin": row.origin, "reason": row.reason,
        "payload": row.payload, "payload_truncated": row.payload_truncated,
    }  # fmt: skip


def state_text(state: dict[str, Any]) -> str:
    """Detector state as stored: JSON, its strings redacted (rules keep event values, e.g. user agents, as keys)."""
    return orjson.dumps(redact_text_in(state)).decode()
