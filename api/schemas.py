"""Response shapes of the REST API (pydantic lives only at the HTTP boundary)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AlertSummary(BaseModel):
    id: str = Field(description="Deterministic: the same rule on the same event always gives this id")
    rule: str = Field(description="The rule's name exactly as written in its file")
    rule_id: str
    severity: str = Field(description="info, low, medium, high or critical")
    mitre: list[str]
    message: str
    time: str = Field(description="Event time (the audit event's stageTimestamp), RFC 3339 UTC")
    detected_at: str
    audit_id: str
    stage: str
    user: str
    groups: list[str]
    impersonated_user: str | None
    source_ips: list[str]
    user_agent: str
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    origin: str = Field(description="Where the event came from: file:line for replays, webhook path and item")
    details: dict[str, Any] = Field(
        default_factory=dict, description="Format-specific extras, e.g. a Falco rule's priority and output"
    )
    group_id: str | None = Field(default=None, description="The alert group this alert was folded into")


class AlertGroup(BaseModel):
    id: str
    rule: str
    rule_id: str
    severity: str
    user: str
    namespace: str
    first_seen: str
    last_seen: str
    count: int = Field(description="Alerts folded into this group")
    suppress_s: int = Field(description="The rule's suppression window: a later alert past it opens a new group")
    last_alert_id: str
    last_message: str


class AlertGroupPage(BaseModel):
    items: list[AlertGroup]
    next_cursor: str | None


class Delivery(BaseModel):
    alert_id: str
    sink: str = Field(description="KIND:SCHEME://HOST[:PORT], or the sink's name= option (never a URL's credentials)")
    status: str = Field(
        description="pending (queued or waiting for a retry), delivered, failed (refused by the sink, or not "
        "delivered within max_age) or dropped (over the sink's rate, or beyond max_pending)"
    )
    attempts: int = Field(description="Deliveries tried")
    last_error: str | None = Field(description="Why the last try failed, or why it was dropped")
    created_at: str = Field(description="When it was queued (with its alert), RFC 3339 UTC")
    next_attempt_at: str | None = Field(description="Pending: when it is tried next")
    delivered_at: str | None


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end")


class AlertDetail(AlertSummary):
    event: dict[str, Any] = Field(description="The audit event, with secrets and tokens redacted")
    deliveries: list[Delivery] = Field(default_factory=list, description="Its notifications, one per sink that took it")


class AlertPage(BaseModel):
    items: list[AlertSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end")


class Receipt(BaseModel):
    audit_id: str = Field(description="The event's auditID (a digest replaces the tail of one over 255 characters)")
    stage: str
    stage_timestamp: str = Field(description="The event's stageTimestamp exactly as received; empty if it had none")
    received_at: str = Field(description="When the batch carrying it was stored (first receipt), RFC 3339 UTC")


class ReceiptPage(BaseModel):
    items: list[Receipt]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end")
    total: int = Field(description="Receipts stored (with `audit_id`: those of that auditID), over all pages")


class Health(BaseModel):
    status: str
    detail: str | None = None
