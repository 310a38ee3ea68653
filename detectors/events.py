"""Audit events: decoding, validation and a frozen read-only view.

The apiserver sends `audit.k8s.io/v1` EventLists over the webhook and writes one Event per line in its
log backend. Older exporters write `v1beta1` Events, or Events without `kind`/`apiVersion`. Everything
that looks like an audit event becomes an `AuditEvent`; everything else is a `Rejected` item with a
reason, so callers can count it and keep it for inspection.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from detectors.annotations import DECISION_ANNOTATION
from detectors.credentials import redact_message
from detectors.errors import EventError
from detectors.fieldpath import compile_path

AUDIT_API_VERSIONS = frozenset({"audit.k8s.io/v1", "audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1"})
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
_STAGE_SET = frozenset(STAGES)
# Nested EventLists inside a JSON array are accepted (Falco does the same), but not without bound.
_MAX_NESTING = 4


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit event as the apiserver wrote it, plus where it came from (`file:line`, `webhook#items[3]`).

    `raw` is never mutated. `cache` memoises derived views (pod specs, patch overlays) per event.
    """

    raw: dict[str, Any]
    origin: str = ""
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def get(self, path: str, default: Any = None) -> Any:
        """Read a field by dotted path (`objectRef.resource`, `annotations['a.b/c']`, `$containers[*].image`).

        A path that can yield several values (`[*]`, list-valued virtual roots) returns the list of them.
        """
        value = compile_path(path).value(self)
        return default if value is None else value

    # Shortcuts used by alerts, keys and the pipeline index; all tolerate missing fields.
    @property
    def audit_id(self) -> str:
        return str(self.raw.get("auditID") or "")

    @property
    def stage(self) -> str:
        return str(self.raw.get("stage") or "")

    @property
    def verb(self) -> str:
        return str(self.raw.get("verb") or "")

    @property
    def request_uri(self) -> str:
        return str(self.raw.get("requestURI") or "")

    @property
    def user(self) -> Mapping[str, Any]:
        user = self.raw.get("user")
        return user if isinstance(user, dict) else {}

    @property
    def username(self) -> str:
        return str(self.user.get("username") or "")

    @property
    def groups(self) -> tuple[str, ...]:
        groups = self.user.get("groups")
        return tuple(str(g) for g in groups) if isinstance(groups, list) else ()

    @property
    def impersonated_username(self) -> str | None:
        imp = self.raw.get("impersonatedUser")
        if isinstance(imp, dict) and imp.get("username"):
            return str(imp["username"])
        return None

    @property
    def principal(self) -> str:
        """Who the request acted as: the impersonated user if any, else the authenticated one."""
        return self.impersonated_username or self.username

    @property
    def source_ips(self) -> tuple[str, ...]:
        ips = self.raw.get("sourceIPs")
        return tuple(str(ip) for ip in ips) if isinstance(ips, list) else ()

    @property
    def user_agent(self) -> str:
        return str(self.raw.get("userAgent") or "")

    def _object_ref(self, key: str) -> str:
        ref = self.raw.get("objectRef")
        if isinstance(ref, dict):
            value = ref.get(key)
            return str(value) if value else ""
        return ""

    @property
    def resource(self) -> str:
        return self._object_ref("resource")

    @property
    def subresource(self) -> str:
        return self._object_ref("subresource")

    @property
    def namespace(self) -> str:
        return self._object_ref("namespace")

    @property
    def name(self) -> str:
        return self._object_ref("name")

    @property
    def response_code(self) -> int | None:
        status = self.raw.get("responseStatus")
        if isinstance(status, dict) and isinstance(status.get("code"), int):
            return int(status["code"])
        return None

    @property
    def decision(self) -> str | None:
        annotations = self.raw.get("annotations")
        if isinstance(annotations, dict):
            value = annotations.get(DECISION_ANNOTATION)
            return str(value) if value is not None else None
        return None

    @property
    def stage_timestamp(self) -> str:
        return str(event_timestamp(self.raw) or "")

    @property
    def time(self) -> datetime:
        """Event time: `stageTimestamp` (older formats: `timestamp`), so replay and live agree."""
        parsed = parse_time(event_timestamp(self.raw))
        return parsed if parsed is not None else datetime.fromtimestamp(0, UTC)

    @property
    def timestamp(self) -> float:
        """Event time in seconds since the epoch (computed once per event)."""
        cached = self.cache.get("timestamp")
        if cached is None:
            cached = self.cache["timestamp"] = self.time.timestamp()
        return float(cached)


@dataclass(frozen=True, slots=True)
class Rejected:
    """An item that is not a valid audit event: counted, stored in quarantine, never silently dropped.

    The reason may quote the item, so it is redacted and cut here, once for every place that shows it. The
    payload is raw: whoever stores or sends it redacts it (`detectors.redact.redacted_json`)."""

    origin: str
    reason: str
    payload: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", redact_message(self.reason))


def event_timestamp(raw: Mapping[str, Any]) -> Any:
    ts = raw.get("stageTimestamp")
    if ts is None:
        ts = raw.get("timestamp")  # v1alpha1 / early v1beta1
    if ts is None:
        ts = raw.get("requestReceivedTimestamp")
    return ts


def parse_time(value: Any) -> datetime | None:
    """Parse a Kubernetes (Micro)Time; nanosecond fractions are cut to microseconds."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def decode_json(data: bytes | str) -> Any:
    """orjson.loads with an error that names the problem and its position."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EventError(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"
        ) from None


def looks_like_event(obj: Mapping[str, Any]) -> bool:
    """An Event without kind/apiVersion, as older exporters write it."""
    return "auditID" in obj or ("stage" in obj and "requestURI" in obj)


def _check_api_version(obj: Mapping[str, Any]) -> str | None:
    api_version = obj.get("apiVersion")
    if api_version is None or api_version in AUDIT_API_VERSIONS:
        return None
    return f"apiVersion {api_version!r} is not an audit API version (expected audit.k8s.io/v1)"


_SHAPES = (("user", dict, "an object"), ("objectRef", dict, "an object"), ("annotations", dict, "an object"),
           ("sourceIPs", list, "a list"))  # fmt: skip


def validate_event(obj: Any) -> str | None:
    """Why `obj` is not a usable audit event, or None when it is. (Hot path: one call per event.)"""
    if type(obj) is not dict:
        if not isinstance(obj, dict):
            return f"expected an Event object, got {type(obj).__name__}"
    get = obj.get
    kind = get("kind")
    if kind is not None and kind != "Event":
        return f"kind {kind!r} is not Event"
    api_version = get("apiVersion")
    if api_version is not None and api_version not in AUDIT_API_VERSIONS:
        return f"apiVersion {api_version!r} is not an audit API version (expected audit.k8s.io/v1)"
    audit_id = get("auditID")
    if not audit_id or type(audit_id) is not str:
        return "missing auditID"
    stage = get("stage")
    if stage not in _STAGE_SET:
        return f"stage {stage!r} is not one of {', '.join(STAGES)}"
    if type(get("verb")) is not str:
        return "missing verb"
    if type(get("requestURI")) is not str:
        return "missing requestURI"
    ts = get("stageTimestamp")
    if ts is None:
        ts = event_timestamp(obj)
        if ts is None:
            return "missing stageTimestamp"
    try:
        datetime.fromisoformat(ts)
    except (TypeError, ValueError):
        return f"stageTimestamp {ts!r} is not an RFC 3339 time"
    for key, kind_, what in _SHAPES:
        value = get(key)
        if value is not None and not isinstance(value, kind_):
            return f"{key} must be {what}"
    return None


def _items(doc: Any, where: str, depth: int) -> Iterator[tuple[str, Any]]:
    """Yield (origin, candidate item) for one decoded document; raise EventError if it is not audit data."""
    if depth > _MAX_NESTING:
        raise EventError(f"{where}: nested deeper than {_MAX_NESTING} levels")
    if isinstance(doc, list):
        for i, element in enumerate(doc):
            sub = f"{where}[{i}]"
            if isinstance(element, dict) and element.get("kind") == "EventList":
                yield from _items(element, sub, depth + 1)
            else:
                yield sub, element
        return
    if not isinstance(doc, dict):
        raise EventError(f"expected an Event, an EventList or a JSON array of them, got {type(doc).__name__}")
    kind = doc.get("kind")
    bad_version = _check_api_version(doc)
    if kind == "EventList" or (kind is None and "items" in doc and not looks_like_event(doc)):
        if bad_version:
            raise EventError(bad_version)
        items = doc.get("items")
        if items is None:
            return  # an empty EventList (the apiserver never sends one, but it is harmless)
        if not isinstance(items, list):
            raise EventError("EventList.items must be a JSON array")
        for i, element in enumerate(items):
            yield f"{where}items[{i}]" if not where else f"{where}.items[{i}]", element
        return
    if kind == "Event" or (kind is None and looks_like_event(doc)):
        if bad_version:
            raise EventError(bad_version)
        yield where, doc
        return
    if kind is None:
        raise EventError("not an audit event: no kind, and none of auditID/stage/requestURI")
    raise EventError(f"kind {kind!r} is not Event or EventList")


def split_document(doc: Any, *, origin: str = "") -> tuple[list[AuditEvent], list[Rejected]]:
    """Split one decoded JSON document into valid events and rejected items.

    Raises EventError when the document as a whole is not audit data (wrong kind, wrong apiVersion).
    """
    events: list[AuditEvent] = []
    rejected: list[Rejected] = []
    for where, item in _items(doc, "", 0):
        item_origin = f"{origin}#{where}" if where else origin
        reason = validate_event(item)
        if reason is None:
            events.append(AuditEvent(raw=item, origin=item_origin))
        else:
            rejected.append(Rejected(origin=item_origin, reason=reason, payload=item))
    return events, rejected


def parse_body(body: bytes, *, origin: str = "") -> tuple[list[AuditEvent], list[Rejected]]:
    """Decode and split a webhook body or one archive line; EventError for a body that is wholly bad."""
    return split_document(decode_json(body), origin=origin)
