"""Webhook bodies bound for Kafka: each accepted event kept as the JSON text it came in, decoded only as far as
validation and its record key need.

`parse_received` gives exactly what `detectors.events.parse_body` gives - the same events accepted, the same items
rejected with the same reasons, the same 400 for a body that is bad as a whole - but each event as a
`ReceivedEvent`: its text as received (what Kafka gets; nothing re-encoded), its record key, its stage and audit ID.
For an EventList, the common body, the items are cut apart (with `find` in the apiserver's own compact form, else
msgspec splits them into raw JSON spans), and an item is decoded into the fields an event has, typed as a valid
event has them so that msgspec checks the types (the request and response objects are skipped, only their JSON
type noted). Any item this cannot settle (one with a field an event does not have or not typed as a valid event has
it, or that nests deeper than the bracket bound, or a body over the per-item size) is decoded whole and checked as
`parse_body` checks it; any body msgspec reads differently from orjson (not UTF-8, a number beyond a double, a JSON
syntax msgspec refuses) goes through `parse_body` itself. Only what msgspec skipped is searched for numbers beyond a
double and counted for nesting: the items with a raw span (a request or response object), and the body around the
items; an item without one has every value typed and checked.
Nothing is redacted on the way, as before: valid events reach Kafka as the apiserver wrote them, rejected items
are redacted when dead-lettered (`ingest.kafka.dead_letter`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import orjson

from detectors.events import AUDIT_API_VERSIONS, AuditEvent, Rejected, Rejections, parse_body, validate_event
from detectors.limits import MAX_EVENT_BYTES, MAX_EVENT_DEPTH, cut_deep, limit_problem, loads_bounded
from detectors.validation import EARLIEST_YEAR, LATEST_YEAR

_UNSET: Any = msgspec.UNSET
# Where a JSON number may be beyond a double, which orjson refuses and msgspec accepts when it skips a value: an
# exponent of 3+ digits or 100+ digits in a row (fewer digits with a 2-digit exponent stay below 1e198). A string
# that merely looks so only sends its body the exact way. Searched for as a literal in the text's marks (C speed),
# a candidate exponent then checked where it is.
_HUGE_EXPONENT = re.compile(rb"[0-9][eE]\+?[0-9]{3,}[,\]}\s]")
# A text's marks: the text with every digit and `+` made a 0, `E` an `e` (for the numbers above), and `[` a `{`,
# so that one count finds its opening brackets. Byte for byte as long as the text.
_MARKS = bytes.maketrans(b"123456789+E[", b"0" * 10 + b"e{")
_ZERO = ord("0")
# what may follow an exponent's third digit in the marks: another digit, or what ends it in `_HUGE_EXPONENT`
_AFTER_3_DIGITS = frozenset(bytes([mark]) for mark in b"0,]} \t\n\r\f\v")


class ReceivedEvent(msgspec.Struct, frozen=True, gc=False):
    """An accepted event, for Kafka: its JSON text as received, its record key, and what batching reads. (A frozen
    msgspec struct rather than a frozen dataclass: made once per event, it costs a tenth as much.)"""

    text: bytes
    key: bytes
    stage: str
    audit_id: str
    source: str  # the origin, or the body's origin when `item` is its index in the body's EventList
    item: int = -1

    @property
    def origin(self) -> str:
        """Where the event came from (`webhook:...#items[3]`): written out only when asked (rarely), not per event."""
        return self.source if self.item < 0 else f"{self.source}#items[{self.item}]"


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


class _ListMeta(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A list's or a status's `metadata` (ListMeta), typed: nothing in it escapes msgspec's checks."""

    selfLink: str = ""  # noqa: N815 - the JSON field's name
    resourceVersion: str = ""  # noqa: N815
    continue_: str = msgspec.field(default="", name="continue")
    remainingItemCount: int | None = None  # noqa: N815


class _EventList(msgspec.Struct, forbid_unknown_fields=True):
    kind: Any = None
    apiVersion: Any = None  # noqa: N815
    metadata: _ListMeta | None = None
    items: list[msgspec.Raw] | None = None


class _User(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    username: str = ""
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, list[str]] = _UNSET


class _StatusCause(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    reason: str = ""
    message: str = ""
    field: str = ""


class _StatusDetails(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    name: str = ""
    group: str = ""
    kind: str = ""
    uid: str = ""
    causes: list[_StatusCause] = []
    retryAfterSeconds: int = 0  # noqa: N815


class _Status(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """`responseStatus` (a Status): the code an int32, the other fields typed as the apiserver writes them (and in
    its order, which msgspec looks for first). No raw span in it: a second `responseStatus` would replace the first,
    whose raw span would then go unseen."""

    kind: str = ""
    apiVersion: str = ""  # noqa: N815
    metadata: _ListMeta | None = None
    status: str = ""
    message: str = ""
    reason: str = ""
    details: _StatusDetails | None = None
    code: Annotated[int, msgspec.Meta(ge=-(2**31), lt=2**31)] = 0


class _ObjectRef(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """`objectRef`'s fields (OBJECT_REF_FIELDS), each a string: cheaper than a dict of them."""

    resource: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""
    apiGroup: str = ""  # noqa: N815
    apiVersion: str = ""  # noqa: N815
    resourceVersion: str = ""  # noqa: N815
    subresource: str = ""


# The values validation allows (STAGES, AUDIT_API_VERSIONS), as types msgspec checks while decoding, at C speed
# and without making a string of each: a value missing here would only send its events the slow way.
_Stage = Literal["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"]
_ApiVersion = Literal["audit.k8s.io/v1", "audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1"]


class _Event(msgspec.Struct, forbid_unknown_fields=True, gc=False, kw_only=True):
    """The fields of an event, typed as a valid event has them (msgspec checks the types, the allowed values and the
    int32 status code); the request and response objects (and v1beta1's `metadata`) only as raw spans, and two
    fields only as present or not. An item that does not decode into this goes the slow way, decoded whole:
    `validate_event` says why. The fields are in the order the apiserver writes them: msgspec looks for the next
    field there first (~6 % of the decode). Lists are decoded as tuples and an absent map or status is left unset:
    less to build and free per event."""

    kind: Literal["Event"] = "Event"
    apiVersion: _ApiVersion = "audit.k8s.io/v1"  # noqa: N815 - the JSON field's name
    metadata: msgspec.Raw = _UNSET
    level: str = ""
    timestamp: msgspec.Raw = _UNSET
    auditID: Annotated[str, msgspec.Meta(min_length=1)]  # noqa: N815
    stage: _Stage
    requestURI: str  # noqa: N815
    verb: str
    user: _User = msgspec.field(default_factory=_User)
    impersonatedUser: msgspec.Raw = _UNSET  # noqa: N815 - validate_event's slow path judges it, and `timestamp`
    sourceIPs: tuple[str, ...] = ()  # noqa: N815
    userAgent: str = ""  # noqa: N815
    objectRef: _ObjectRef = msgspec.field(default_factory=_ObjectRef)  # noqa: N815
    responseStatus: _Status = _UNSET  # noqa: N815
    requestObject: msgspec.Raw = _UNSET  # noqa: N815
    responseObject: msgspec.Raw = _UNSET  # noqa: N815
    requestReceivedTimestamp: str | None = None  # noqa: N815
    stageTimestamp: str  # noqa: N815
    annotations: dict[str, str] = _UNSET


_EVENT_LIST = msgspec.json.Decoder(_EventList)
# The envelope the apiserver writes around a batch (Go's encoding of an audit.k8s.io/v1 EventList), and the bytes
# between two of its items: every event it writes starts with its kind.
_APISERVER_HEAD = b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":['
_BETWEEN_EVENTS = b'},{"kind":"Event",'
_EVENT = msgspec.json.Decoder(_Event)
# The first byte of a request or response object's JSON, by the types validation allows: object, list, null.
_REQUEST_STARTS = frozenset(b"{[n")
_RESPONSE_STARTS = frozenset(b"{n")


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
    small = len(body) <= MAX_EVENT_BYTES
    texts = _apiserver_items(body) if small else None
    if texts is not None:
        decoded = _all_decoded(texts)
        if decoded is not None:  # each piece one JSON value: the cuts were between items
            return _judged(texts, decoded, origin, small)
    try:
        envelope = _EVENT_LIST.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    version = envelope.apiVersion
    known = version is None or (type(version) is str and version in AUDIT_API_VERSIONS)
    if envelope.kind != "EventList" or not known:
        return None  # not the usual shape, or a 400: parse_body says which, in its words
    texts = [bytes(span) for span in envelope.items or ()]
    around = _around_items(body, texts)
    if _may_be_huge_number(around, around.translate(_MARKS)):
        return None
    return _judged(texts, [_decoded(text) if small else None for text in texts], origin, small)


def _judged(
    texts: list[bytes], decoded: list[_Event | None], origin: str, small: bool
) -> tuple[list[ReceivedEvent], Rejections] | None:
    """The items judged, each by its typed fields (`decoded`, None where it did not decode) when they settle it, else
    decoded whole; None when the body must go through `parse_body` (an item orjson refuses)."""
    events: list[ReceivedEvent] = []
    rejected = Rejections()
    for index, (text, fields) in enumerate(zip(texts, decoded, strict=True)):
        if fields is not None and _accepted(text, fields):
            username = fields.user.username
            key = username.encode() if username else _key(fields)
            events.append(ReceivedEvent(text, key, fields.stage, fields.auditID, origin, index))
            continue
        try:
            item, shallow = loads_bounded(text)
        except orjson.JSONDecodeError:
            return None
        if not shallow:
            return None  # deeper than the limit: whether the whole body is even JSON is orjson's to say
        reason = validate_event(item) or limit_problem(item, shallow=True, small=small)
        item_origin = f"{origin}#items[{index}]"
        if reason is None:
            event = AuditEvent(item, item_origin)
            events.append(ReceivedEvent(text, record_key(event), event.stage, event.audit_id, origin, index))
        elif rejected.full:
            rejected.count()
        else:
            rejected.add(Rejected(origin=item_origin, reason=reason, payload=cut_deep(item)))
    return events, rejected


def _apiserver_items(body: bytes) -> list[bytes] | None:
    """The items' texts of a body in the apiserver's own form (compact, its envelope byte for byte), cut wherever one
    event ends and the next begins, `},{"kind":"Event",`; None for a body in another form. Those bytes also occur
    inside an item that holds a list of such objects (never inside a string: their quotes are not escaped), or in
    a body that is not JSON; then a piece is not one JSON value, which its decode finds. When every piece is one,
    the body is the EventList of exactly these items, and its envelope holds nothing to check."""
    if not (body.startswith(_APISERVER_HEAD) and body.endswith(b"}]}") and body.startswith(b"{", len(_APISERVER_HEAD))):
        return None
    # found from the end: CPython's `rfind` is a plain skip loop, its `find` in a long text a two-way search that
    # prepares its needle on every call (the cuts take a third less time); the needle cannot overlap itself, so
    # both find the same cuts
    start, end = len(_APISERVER_HEAD), len(body) - 2
    cuts = []
    cut = body.rfind(_BETWEEN_EVENTS, start, end)
    while cut >= 0:
        cuts.append(cut)
        cut = body.rfind(_BETWEEN_EVENTS, start, cut)
    texts = []
    for cut in reversed(cuts):
        texts.append(body[start : cut + 1])
        start = cut + 2
    texts.append(body[start:end])
    return texts


def _around_items(body: bytes, texts: list[bytes]) -> bytes:
    """The body but its items' texts, when these lie in it one after the other, separated by commas (a compact body,
    as the apiserver sends); else the whole body. Every byte of the body is then in the result or in an item's
    text (or a copy of it): the items are judged on their own."""
    if not texts:
        return body
    start = body.find(texts[0])  # the first item's text, or an earlier copy of it: the same bytes either way
    items = b",".join(texts)
    if not body.startswith(items, start):
        return body
    return body[:start] + body[start + len(items) :]


# 99 and not 100: CPython searches for a needle of 100 bytes or more with a two-way search, which prepares it on
# every call; a run of 100 is 99 followed by one more
_DIGITS_99 = b"0" * 99


def _may_be_huge_number(body: bytes, marks: bytes) -> bool:
    at = marks.find(_DIGITS_99)
    while at >= 0:
        if marks.startswith(b"0", at + 99):
            return True
        at = marks.find(_DIGITS_99, at + 1)
    # the candidates are the marks' `0e000`, found from the end as `e000`: a search that tests the needle's
    # first byte at each place, rarely an `e`, is twice as fast in the marks' runs of zeros as one that tests `0`
    # and a candidate's next mark must be one the exponent may go on with (a digit) or end with: most candidates,
    # hex in a uid (`e903"`), are settled without the regex
    at = marks.rfind(b"e000")
    while at > 0:
        if marks[at - 1] == _ZERO and marks[at + 4 : at + 5] in _AFTER_3_DIGITS and _HUGE_EXPONENT.match(body, at - 1):
            return True
        at = marks.rfind(b"e000", 0, at)
    return False


def _all_decoded(texts: list[bytes]) -> list[_Event | None] | None:
    """Every piece's fields, typed, or None as soon as one piece does not decode (the body then goes the way that
    decodes its items one by one): no Python call between two decodes."""
    decode = _EVENT.decode
    try:
        return [decode(text) for text in texts]
    except (msgspec.DecodeError, RecursionError):
        return None


def _decoded(text: bytes) -> _Event | None:
    """An item's fields, typed; None when it is not one JSON value holding only an event's fields typed as valid."""
    try:
        return _EVENT.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return None


def _accepted(text: bytes, fields: _Event) -> bool:
    """Whether an item's typed fields make it a valid event, by `validate_event`'s own checks (else the item is then
    decoded whole, which also finds the reason; tests/ingest/test_body.py holds the two to the same answers), and
    what msgspec skipped in it holds no number beyond a double and nests within the depth limit: nothing, when it
    has no raw span (every value typed and checked, nested at most 5 deep); else its whole text is searched and its
    brackets counted (a raw span's key may also occur twice, the first value skipped)."""
    stamp, received = fields.stageTimestamp, fields.requestReceivedTimestamp
    if not (
        fields.impersonatedUser is _UNSET
        and fields.timestamp is _UNSET
        and _valid_time(stamp)
        and (received is None or received == stamp or _valid_time(received))
    ):
        return False
    request, response = fields.requestObject, fields.responseObject
    if request is _UNSET and response is _UNSET and fields.metadata is _UNSET:
        return True
    if not (
        (request is _UNSET or memoryview(request)[0] in _REQUEST_STARTS)
        and (response is _UNSET or memoryview(response)[0] in _RESPONSE_STARTS)
    ):
        return False
    marks = text.translate(_MARKS)
    return marks.count(b"{") <= MAX_EVENT_DEPTH and not _may_be_huge_number(text, marks)


_fromisoformat = datetime.fromisoformat


def _valid_time(stamp: str) -> bool:
    """As `validate_event` checks an event time: a calendar date and time, with its zone, in the years allowed."""
    try:
        _fromisoformat(stamp)
    except ValueError:
        return False
    return (
        stamp[4:17:3] == "--T::"
        and (stamp[-1] == "Z" or (stamp[-3] == ":" and stamp[-6] in "+-"))
        and EARLIEST_YEAR <= stamp < LATEST_YEAR
    )


def _key(fields: _Event) -> bytes:
    """`record_key` of a valid event read as `_Event` (never impersonated: those go the slow way); its common case,
    the user's name, is written out where it is called."""
    if fields.user.username:
        return fields.user.username.encode()
    ips = fields.sourceIPs
    return f"unauthenticated:{ips[-1] if ips else '-'}".encode()
