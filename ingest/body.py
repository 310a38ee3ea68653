"""Webhook bodies bound for Kafka: each accepted event kept as the JSON text it came in, decoded only as far as
validation and its record key need.

`parse_received` gives exactly what `detectors.events.parse_body` gives - the same events accepted, the same items
rejected with the same reasons, the same 400 for a body that is bad as a whole - but each event as a
`ReceivedEvent`: its text as received (what Kafka gets; nothing re-encoded), its record key, its stage and audit ID.
For an EventList, the common body, msgspec splits the items into raw JSON spans, and an item is decoded only into
the fields `validate_event` reads (the request and response objects are skipped, only their JSON type noted). Any
item this cannot settle (one that fails validation, nests deeper than the bracket bound, or a body over the
per-item size) is decoded whole and checked as `parse_body` checks it; any body msgspec reads differently from
orjson (not UTF-8, a number beyond a double, a JSON syntax msgspec refuses) goes through `parse_body` itself.
Nothing is redacted on the way, as before: valid events reach Kafka as the apiserver wrote them, rejected items
are redacted when dead-lettered (`ingest.kafka.dead_letter`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from detectors.events import AUDIT_API_VERSIONS, AuditEvent, Rejected, Rejections, parse_body, validate_event
from detectors.limits import MAX_EVENT_BYTES, MAX_EVENT_DEPTH, cut_deep, limit_problem, loads_bounded

_UNSET: Any = msgspec.UNSET
# Where a JSON number may be beyond a double, which orjson refuses and msgspec accepts: an exponent of 3+ digits
# or 100+ digits in a row (fewer digits with a 2-digit exponent stay below 1e198). A string that merely looks so
# only sends its body the exact way. Searched for as a literal in the text with every digit and `+` made a 0 and
# `E` an `e` (C speed), a candidate exponent then checked where it is.
_ZEROS = bytes.maketrans(b"123456789+E", b"0" * 10 + b"e")
_HUGE_EXPONENT = re.compile(rb"[0-9][eE]\+?[0-9]{3,}[,\]}\s]")


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """An accepted event, for Kafka: its JSON text as received, its record key, and what batching reads."""

    text: bytes
    key: bytes
    stage: str
    audit_id: str
    origin: str


def record_key(event: AuditEvent) -> bytes:
    """The principal: the impersonated user if any, else the authenticated user.

    Requests that failed authentication carry no user; they are keyed by their last source IP (the only
    trustworthy one), so per-IP detectors (401 bursts) see them together.
    """
    principal = event.principal
    if principal:
        return principal.encode()
    ips = event.source_ips
    return f"unauthenticated:{ips[-1] if ips else '-'}".encode()


def received(event: AuditEvent) -> ReceivedEvent:
    """An event decoded whole, as a ReceivedEvent (re-encoded: used only where the text was not kept)."""
    return ReceivedEvent(orjson.dumps(event.raw), record_key(event), event.stage, event.audit_id, event.origin)


class _EventList(msgspec.Struct):
    kind: Any = None
    apiVersion: Any = None  # noqa: N815 - the JSON field's name
    items: list[msgspec.Raw] | None = None


class _Fields(msgspec.Struct):
    """The fields of an event that `validate_event` and `record_key` read; the bodies only as raw spans."""

    kind: Any = _UNSET
    apiVersion: Any = _UNSET  # noqa: N815
    level: Any = _UNSET
    auditID: Any = _UNSET  # noqa: N815
    stage: Any = _UNSET
    requestURI: Any = _UNSET  # noqa: N815
    verb: Any = _UNSET
    user: Any = _UNSET
    impersonatedUser: Any = _UNSET  # noqa: N815
    sourceIPs: Any = _UNSET  # noqa: N815
    userAgent: Any = _UNSET  # noqa: N815
    objectRef: Any = _UNSET  # noqa: N815
    responseStatus: Any = _UNSET  # noqa: N815
    annotations: Any = _UNSET
    requestReceivedTimestamp: Any = _UNSET  # noqa: N815
    stageTimestamp: Any = _UNSET  # noqa: N815
    timestamp: Any = _UNSET
    requestObject: msgspec.Raw = _UNSET  # noqa: N815
    responseObject: msgspec.Raw = _UNSET  # noqa: N815


_EVENT_LIST = msgspec.json.Decoder(_EventList)
_FIELDS = msgspec.json.Decoder(_Fields)
_NAMES = _Fields.__struct_fields__
_BODIES = frozenset({"requestObject", "responseObject"})
# What stands in for a request or response object, by the first byte of its JSON: only its type is validated.
_STAND_INS: dict[int, Any] = {ord("{"): {}, ord("["): [], ord("n"): None}


def parse_received(body: bytes, *, origin: str = "") -> tuple[list[ReceivedEvent], Rejections]:
    """`parse_body`'s answer, each accepted event as received; EventError for a body that is wholly bad."""
    split = _split_event_list(body, origin)
    if split is not None:
        return split
    events, rejected = parse_body(body, origin=origin)
    return [received(event) for event in events], rejected


def _split_event_list(body: bytes, origin: str) -> tuple[list[ReceivedEvent], Rejections] | None:
    """The items of an EventList body split and checked, or None when the body must go through `parse_body`."""
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError:
            return None
    if _may_be_huge_number(body):
        return None
    try:
        envelope = _EVENT_LIST.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    version = envelope.apiVersion
    known = version is None or (type(version) is str and version in AUDIT_API_VERSIONS)
    if envelope.kind != "EventList" or not known:
        return None  # not the usual shape, or a 400: parse_body says which, in its words
    small = len(body) <= MAX_EVENT_BYTES
    events: list[ReceivedEvent] = []
    rejected = Rejections()
    for index, span in enumerate(envelope.items or ()):
        text = bytes(span)
        item_origin = f"{origin}#items[{index}]"
        if small and text.count(b"{") + text.count(b"[") <= MAX_EVENT_DEPTH:
            event = _validated_fields(text, item_origin)
            if event is not None:
                events.append(ReceivedEvent(text, record_key(event), event.stage, event.audit_id, item_origin))
                continue
        try:
            item, shallow = loads_bounded(text)
        except orjson.JSONDecodeError:
            return None
        if not shallow:
            return None  # deeper than the limit: whether the whole body is even JSON is orjson's to say
        reason = validate_event(item) or limit_problem(item, shallow=True, small=small)
        if reason is None:
            event = AuditEvent(item, item_origin)
            events.append(ReceivedEvent(text, record_key(event), event.stage, event.audit_id, item_origin))
        elif rejected.full:
            rejected.count()
        else:
            rejected.add(Rejected(origin=item_origin, reason=reason, payload=cut_deep(item)))
    return events, rejected


def _may_be_huge_number(body: bytes) -> bool:
    zeros = body.translate(_ZEROS)
    if b"0" * 100 in zeros:
        return True
    at = zeros.find(b"0e000")
    while at >= 0:
        if _HUGE_EXPONENT.match(body, at):
            return True
        at = zeros.find(b"0e000", at + 1)
    return False


def _validated_fields(text: bytes, origin: str) -> AuditEvent | None:
    """The item as an AuditEvent over the fields validation reads, when they make it valid; else None (the item
    is then decoded whole, which also finds the reason)."""
    try:
        fields = _FIELDS.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return None
    values = msgspec.structs.astuple(fields)
    raw = {name: value for name, value in zip(_NAMES, values, strict=True) if value is not _UNSET}
    for name in _BODIES:
        span = raw.get(name)
        if span is not None:
            first = memoryview(span)[0]
            if first not in _STAND_INS:
                return None
            raw[name] = _STAND_INS[first]
    if validate_event(raw) is not None:
        return None
    return AuditEvent(raw, origin)
