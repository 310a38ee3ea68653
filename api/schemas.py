"""Request and response shapes of the REST API (pydantic lives only at the HTTP boundary)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from api.queries import bounded_utc
from api.ranking import MAX_RANKED


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
        default_factory=dict,
        description="The rule's `description`, `response` (what to check, how to contain) and `false_positives`; "
        "`command`: the decoded, redacted argv of an exec-like request; format-specific extras, e.g. a Falco "
        "rule's priority and output",
    )
    group_id: str | None = Field(default=None, description="The alert group this alert was folded into")
    status: str = Field(default="open", description="Triage status: open, acknowledged, resolved, false_positive")
    assignee: str | None = Field(default=None, description="A label (e.g. a name or email), not an identity")


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
    status: str = Field(default="open", description="Triage status: open, acknowledged, resolved, false_positive")
    assignee: str | None = None


class AlertGroupPage(BaseModel):
    items: list[AlertGroup]
    next_cursor: str | None


class Note(BaseModel):
    at: str
    author: str = Field(description="A label the client gave (X-Auditwatch-User or `author`), not an identity")
    text: str = Field(description="Redacted: credential-shaped text is replaced")
    on: Literal["alert", "group"] = Field(description="Whether the note was made on the alert or on its group")


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
    notes: list[Note] = Field(default_factory=list, description="Notes on the alert and on its group, oldest first")


class AlertGroupDetail(AlertGroup):
    notes: list[Note] = Field(default_factory=list)


class AlertPage(BaseModel):
    items: list[AlertSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end")


class RankedPage(AlertPage):
    ranked: int = Field(description=f"Alerts ranked: the period's, or its {MAX_RANKED:,} newest (see `complete`)")
    complete: bool = Field(description="False when the period holds more alerts than were ranked: narrow it")


class Receipt(BaseModel):
    audit_id: str = Field(description="The event's auditID (a digest replaces the tail of one over 255 characters)")
    stage: str
    stage_timestamp: str = Field(description="The event's stageTimestamp exactly as received; empty if it had none")
    received_at: str = Field(description="When the batch carrying it was stored (first receipt), RFC 3339 UTC")


class ReceiptPage(BaseModel):
    items: list[Receipt]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end")
    total: int = Field(description="Receipts stored (with `audit_id`: those of that auditID), over all pages")


class QuarantinedItem(BaseModel):
    id: int
    received_at: str = Field(description="When it was set aside, RFC 3339 UTC")
    origin: str = Field(description="Where it came from: the file and line, the webhook item, the Kafka record")
    reason: str = Field(description="Why it was set aside (an invalid field, a detector's error, a refused alert)")
    payload: str = Field(description="The item as JSON text, redacted; cut at 16 KiB (`payload_truncated`)")
    payload_truncated: bool


class QuarantinePage(BaseModel):
    items: list[QuarantinedItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end")


class Health(BaseModel):
    status: str
    detail: str | None = None


# ---- triage and exceptions ---------------------------------------------------------------------------------

# C0 and C1 controls (\x9b is a terminal's CSI, as ESC [ is); text may have tabs and line breaks (\n, \r, NEL)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f]")
# a label is one line: no control character, nor a line break of Unicode's (NEL, LINE and PARAGRAPH SEPARATOR)
_LABEL_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


def _label(value: str) -> str:
    if _LABEL_CONTROL.search(value):
        raise ValueError("control characters and line breaks are not allowed")
    return value


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_label)]
NoteText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), AfterValidator(_text)
]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), AfterValidator(_text)]
RuleId = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_label)]
FieldPath = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_label)]
Glob = Annotated[str, StringConstraints(min_length=1, max_length=1000), AfterValidator(_label)]
Globs = Annotated[list[Glob], BeforeValidator(_as_list), Field(min_length=1, max_length=50)]
Status = Literal["open", "acknowledged", "resolved", "false_positive"]


class ExceptionSpec(BaseModel):
    """An exception made from the alert being triaged (its rule; `match` as in ExceptionCreate)."""

    model_config = ConfigDict(extra="forbid")

    match: Annotated[dict[FieldPath, Globs | None], Field(max_length=20)] | None = Field(
        default=None,
        description="Field path -> a value or glob, or a list of them (any may match); null takes the value(s) "
        "from the alert. Omitted: the alert's user.username, verb, objectRef.resource, objectRef.subresource and "
        "objectRef.namespace. Every condition must hold, and every value a path yields must match.",
        examples=[{"user.username": "ci-bot", "objectRef.namespace": None, "$containers[*].image": "registry.corp/*"}],
    )
    expires_at: AwareDatetime | None = Field(default=None, description="Stops applying then (RFC 3339)")
    comment: Comment = ""

    @model_validator(mode="after")
    def _future_expiry(self) -> ExceptionSpec:
        if self.expires_at is None:
            return self
        try:
            # in UTC, as stored: 9999-12-31T23:00:00-05:00 is past the last datetime and would not convert
            self.expires_at = bounded_utc(self.expires_at)
        except ValueError as exc:
            raise ValueError(f"expires_at is {exc}") from None
        if self.expires_at <= datetime.now(self.expires_at.tzinfo):
            raise ValueError("expires_at is in the past")
        return self


class ExceptionCreate(ExceptionSpec):
    """A rule exception: alerts of `rule_id` whose event matches `match` are not stored (counted as hits)."""

    rule_id: RuleId | None = Field(default=None, description="Required unless from_alert gives it")
    from_alert: Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_label)] | None = Field(
        default=None, description="An alert id: its rule, and the values of the fields given as null (or omitted)"
    )
    author: Label | None = Field(default=None, description="Else the X-Auditwatch-User header; a label only")


class GroupTriagePatch(BaseModel):
    """A triage change. At least one of status, assignee (null unassigns) and note."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    assignee: Label | None = Field(default=None, description="A label (a name, an email); null unassigns")
    note: NoteText | None = Field(default=None, description="Appended; credential-shaped text is redacted")
    author: Label | None = Field(default=None, description="Else the X-Auditwatch-User header; a label only")

    @model_validator(mode="after")
    def _something(self) -> GroupTriagePatch:
        if not {"status", "assignee", "note"} & self.model_fields_set:
            raise ValueError("nothing to change: give status, assignee or note")
        if "status" in self.model_fields_set and self.status is None:
            raise ValueError("status cannot be null")
        return self


class TriagePatch(GroupTriagePatch):
    create_exception: ExceptionSpec | None = Field(
        default=None, description="With status false_positive: also create an exception from this alert"
    )

    @model_validator(mode="after")
    def _exception_needs_false_positive(self) -> TriagePatch:
        if self.create_exception is not None and self.status != "false_positive":
            raise ValueError("create_exception goes with status false_positive")
        return self


class RuleException(BaseModel):
    id: str
    rule_id: str
    match: dict[str, list[str]] = Field(description="Field path -> values or globs (any may match)")
    comment: str
    author: str
    created_at: str
    expires_at: str | None
    from_alert: str | None
    active: bool = Field(description="False once expired")
    hits: int = Field(description="Alerts it kept out of the store, each once (not again when redelivered)")
    last_hit: str | None = Field(description="When it last kept out an alert not counted before")


class RuleExceptionList(BaseModel):
    items: list[RuleException]


class TriagedAlert(AlertDetail):
    exception: RuleException | None = Field(default=None, description="The exception created with this change")


class TriagedGroup(AlertGroupDetail):
    alerts_changed: int = Field(description="Alerts of the group whose status or assignee this call changed")


class HistoryEntry(BaseModel):
    at: str
    author: str
    field: Literal["status", "assignee", "note"]
    old: str | None
    new: str | None
    via_group: str | None = Field(description="Set when the change was made to the alert's group")


class History(BaseModel):
    items: list[HistoryEntry] = Field(description="Oldest first")
