"""Audit events: decoding, splitting into valid events and rejected items, and a frozen read-only view.

The apiserver sends `audit.k8s.io/v1` EventLists over the webhook and writes one Event per line in its
log backend. Older exporters write `v1beta1` Events, or Events without `kind`/`apiVersion`. Everything
that looks like an audit event and passes `validate_event` (every field the pipeline reads has its type)
and the per-item limits of `detectors.limits` becomes an `AuditEvent`; everything else is a `Rejected`
item with a reason, counted, the first MAX_KEPT_REJECTED of a batch kept for inspection (`Rejections`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from detectors.credentials import redact_message
from detectors.decision import decision_of
from detectors.errors import EventError
from detectors.fieldpath import compile_path
from detectors.limits import MAX_EVENT_BYTES, cut_deep, limit_problem, loads_bounded
from detectors.unreadable import Unreadable, read_items
from detectors.unreadable import json_problem as json_problem
from detectors.validation import AUDIT_API_VERSIONS as AUDIT_API_VERSIONS
from detectors.validation import STAGES as STAGES
from detectors.validation import json_type, quoted, valid_route_key
from detectors.validation import validate_event as validate_event

# Nested EventLists inside a JSON array are accepted (Falco does the same), but not without bound.
_MAX_NESTING = 4
# Rejected items kept whole per batch (for quarantine and the reply); the rest are only counted, so a body of
# N junk items costs a counter, not N objects and N quarantine rows.
MAX_KEPT_REJECTED = 100


class AuditEvent(msgspec.Struct, frozen=True, eq=False, repr_omit_defaults=True):
    """One audit event as the apiserver wrote it, plus where it came from (`file:line`, `webhook#items[3]`).

    `raw` is never mutated. `cache` memoises derived views (pod specs, patch overlays) per event. `route` is
    the event's routing key (`detectors.scope.route_key`) when its validation found it on the way (None: the
    pipeline reads it from `raw`). (A frozen msgspec struct rather than a frozen dataclass: made once per event,
    in C it costs a third as much. Events are told apart by identity, as their caches may differ.)
    """

    raw: dict[str, Any]
    origin: str = ""
    cache: dict[str, Any] = msgspec.field(default_factory=dict)
    route: tuple[Any, ...] | None = None

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
        user = self.raw.get("user")
        name = user.get("username") if isinstance(user, dict) else None
        return name if type(name) is str else str(name or "")  # a validated event's is a string

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
        """Who the request acted as: the impersonated user if any, else the authenticated one (once per event)."""
        cache = self.cache
        principal: str | None = cache.get("principal")
        if principal is None:
            imp = self.raw.get("impersonatedUser")  # `impersonated_username or username`, a call less
            name = imp.get("username") if isinstance(imp, dict) else None
            principal = cache["principal"] = str(name) if name else self.username
        return principal

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
        """`allow`/`forbid` from the authorizer's annotation, else from the response code
        (`detectors.decision`); None when neither tells."""
        return decision_of(self.raw)

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
        cache = self.cache
        cached: float | None = cache.get("timestamp")
        if cached is None:
            raw = self.raw
            stamp = raw.get("stageTimestamp")  # `event_timestamp`'s usual answer, without the call
            cached = cache["timestamp"] = (
                _seconds(stamp if stamp is not None else event_timestamp(raw)) or self.time.timestamp()
            )
        return cached


def _seconds(value: Any) -> float | None:
    """`AuditEvent.time`'s seconds for the usual time (a zone, a year far from datetime's limits), without its
    conversion to UTC: an aware time's timestamp is the same instant. None for any other value."""
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is not None and 1 < parsed.year < 9999:
            return parsed.timestamp()
    return None


@dataclass(frozen=True, slots=True)
class Rejected:
    """An item that is not a valid audit event: counted, stored in quarantine, never silently dropped.

    The reason may quote the item, so it is redacted and cut here, once for every place that shows it. The
    payload is the item, cut below MAX_EVENT_DEPTH levels (`cut_deep`), or the start of a text that is not
    JSON; it is not redacted: whoever stores or sends it redacts it (`detectors.redact.redacted_json`)."""

    origin: str
    reason: str
    payload: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", redact_message(self.reason))


@dataclass(slots=True)
class Rejections:
    """The rejected items of a batch: the first `keep` whole (for quarantine and reports), all of them counted."""

    keep: int = MAX_KEPT_REJECTED
    kept: list[Rejected] = field(default_factory=list)
    total: int = 0

    @classmethod
    def of(cls, *items: Rejected) -> Rejections:
        rejections = cls()
        for item in items:
            rejections.add(item)
        return rejections

    @property
    def full(self) -> bool:
        """Whether further items are only counted (so the caller need not build them)."""
        return len(self.kept) >= self.keep

    def add(self, item: Rejected) -> None:
        self.total += 1
        if len(self.kept) < self.keep:
            self.kept.append(item)

    def count(self, n: int = 1) -> None:
        """Items rejected but not kept (the caller checked `full`)."""
        self.total += n

    def merge(self, other: Rejections) -> None:
        room = self.keep - len(self.kept)
        if room > 0:
            self.kept.extend(other.kept[:room])
        self.total += other.total

    def __bool__(self) -> bool:
        return self.total > 0


def copy_key(raw: Mapping[str, Any]) -> str:
    """What makes two events copies of one: the same auditID, stage and stageTimestamp (the time too, because
    clients choose auditIDs: a forged one must not hide a later request). One string, the three joined by \x1f:
    a third of the cost of a tuple, which the garbage collector tracks, in sets of hundreds of thousands. It is
    unambiguous: a validated event's stage and stageTimestamp hold no \x1f, so the last two separators split a
    key back into its parts whatever the client-chosen auditID holds."""
    return f"{raw.get('auditID')}\x1f{raw.get('stage')}\x1f{raw.get('stageTimestamp') or ''}"


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
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # year 1 with a positive offset, 9999 with a negative one
        return None


def looks_like_event(obj: Mapping[str, Any]) -> bool:
    """An Event without kind/apiVersion, as older exporters write it."""
    return "auditID" in obj or ("stage" in obj and "requestURI" in obj)


def _check_api_version(obj: Mapping[str, Any]) -> str | None:
    api_version = obj.get("apiVersion")
    if api_version is None or (type(api_version) is str and api_version in AUDIT_API_VERSIONS):
        return None
    if type(api_version) is not str:
        return f"apiVersion must be a string, got {json_type(api_version)}"
    return f"apiVersion {quoted(api_version)} is not an audit API version (expected audit.k8s.io/v1)"


# (where, index, item): the item's origin suffix is `where[index]`, or `where` alone when index is None; built
# only for the items that keep one (events, kept rejects)
_Located = tuple[str, "int | None", Any]


def _items(doc: Any, where: str, depth: int) -> Iterator[_Located]:
    """Yield each candidate item of one decoded document; raise EventError if it is not audit data."""
    if depth > _MAX_NESTING:
        raise EventError(f"{where}: nested deeper than {_MAX_NESTING} levels")
    if type(doc) is list:
        for i, element in enumerate(doc):
            if type(element) is dict and element.get("kind") == "EventList":
                yield from _items(element, f"{where}[{i}]", depth + 1)
            else:
                yield where, i, element
        return
    if not isinstance(doc, dict):
        raise EventError(f"expected an Event, an EventList or a JSON array of them, got {json_type(doc)}")
    kind = doc.get("kind")
    bad_version = _check_api_version(doc)
    if kind == "EventList" or (kind is None and "items" in doc and not looks_like_event(doc)):
        if bad_version:
            raise EventError(bad_version)
        items = doc.get("items")
        if items is None:
            return  # an empty EventList (the apiserver never sends one, but it is harmless)
        if type(items) is not list:
            raise EventError("EventList.items must be a JSON array")
        prefix = f"{where}.items" if where else "items"
        for i, element in enumerate(items):
            yield prefix, i, element
        return
    if kind == "Event" or (kind is None and looks_like_event(doc)):
        if bad_version:
            raise EventError(bad_version)
        yield where, None, doc
        return
    if kind is None:
        raise EventError("not an audit event: no kind, and none of auditID/stage/requestURI")
    if type(kind) is not str:
        raise EventError(f"kind must be a string, got {json_type(kind)}")
    raise EventError(f"kind {quoted(kind)} is not Event or EventList")


def split_document(
    doc: Any, *, origin: str = "", where: str = "", shallow: bool = False, small: bool = False
) -> tuple[list[AuditEvent], Rejections]:
    """Split one decoded JSON document into valid events and rejected items (the first MAX_KEPT_REJECTED kept).

    Every item is checked for its fields' types (`validate_event`) and its nesting and size
    (`detectors.limits`); `shallow`/`small` say that the text the document came from is known to be within
    the depth/size limits (see `loads_bounded`), which spares those checks. Raises EventError when the
    document as a whole is not audit data (wrong kind, wrong apiVersion). `where` is the document's place in a
    larger one (`[3]`), which the items' origins name.
    """
    events: list[AuditEvent] = []
    rejected = Rejections()
    for place, index, item in _items(doc, where, 0):
        route = valid_route_key(item)  # the common valid event: its key, from one validation
        reason = None if route is not None else validate_event(item)
        if reason is None and not (shallow and small):
            reason = limit_problem(item, shallow=shallow, small=small)
        if reason is not None and rejected.full:
            rejected.count()
            continue
        suffix = place if index is None else f"{place}[{index}]"
        item_origin = f"{origin}#{suffix}" if suffix else origin
        if reason is None:
            events.append(AuditEvent(item, item_origin, {}, route))  # positional: keywords cost 30% more here
        elif type(item) is Unreadable:
            rejected.add(Rejected(origin=item_origin, reason=item.reason, payload=cut_deep(item.payload)))
        else:
            rejected.add(Rejected(origin=item_origin, reason=reason, payload=cut_deep(item)))
    return events, rejected


def parse_body(body: bytes, *, origin: str = "") -> tuple[list[AuditEvent], Rejections]:
    """Decode and split a webhook body or one archive line; EventError for a body that is wholly bad (an
    EventList item that is not JSON on its own is only rejected: `detectors.unreadable`)."""
    try:
        doc, shallow = loads_bounded(body)
    except orjson.JSONDecodeError as exc:
        items = read_items(body)  # an EventList whose damage is within items: those are rejected alone
        if items is None:
            raise EventError(json_problem(exc, body)) from None
        return split_document(items, origin=origin)
    return split_document(doc, origin=origin, shallow=shallow, small=len(body) <= MAX_EVENT_BYTES)
