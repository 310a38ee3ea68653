"""Which decoded JSON items are audit events the pipeline can read: the type of every field it reads, and sane times.

An item that passes has, where present (absent and null are the same, as for the apiserver's Go decoder):
strings for `kind`, `apiVersion`, `auditID`, `stage`, `verb`, `requestURI`, `userAgent`, `level` and every
`objectRef` field; `user`/`impersonatedUser` objects with string `username`/`uid`, `groups` a list of strings
and `extra` an object of lists of strings; `sourceIPs` a list of strings; `responseStatus` an object whose
`code` is an int32; `annotations` an object of strings; `requestObject` an object (or a list: the apiserver
logs a JSON-patch body as sent) and `responseObject` an object; and RFC 3339 timestamps in a sane range.
So every accessor of `AuditEvent`, every field path root and everything that hashes these fields can trust
their types. The nesting and size limits are in `detectors.limits`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

AUDIT_API_VERSIONS = frozenset({"audit.k8s.io/v1", "audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1"})
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
_STAGE_SET = frozenset(STAGES)
# Event times must lie in [1970, 2200) as written (the UTC instant can be up to a day outside, by its offset):
# far from datetime's limits (years 1 and 9999), so converting to UTC, adding windows, suppression periods
# or retention never overflows, and a time before the epoch or centuries ahead is a forgery or a broken clock.
EARLIEST_YEAR = "1970"
LATEST_YEAR = "2200"  # exclusive
TIME_FIELDS = ("stageTimestamp", "requestReceivedTimestamp", "timestamp")  # `timestamp`: v1alpha1, early v1beta1
OBJECT_REF_FIELDS = (
    "resource", "namespace", "name", "uid", "apiGroup", "apiVersion", "resourceVersion", "subresource",
)  # fmt: skip
_INT32 = range(-(2**31), 2**31)
_ABSENT: Any = msgspec.UNSET  # a field not in the event
_JSON_TYPES = {dict: "object", list: "list", str: "string", bool: "bool", int: "number", float: "number"}


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for reasons ("got list")."""
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def quoted(text: str, limit: int = 80) -> str:
    """A string as reasons show it: repr, cut to `limit` characters (a reason is stored and sent back)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _must_be(path: str, what: str, value: Any) -> str:
    return f"{path} must be {what}, got {json_type(value)}"


def time_problem(value: Any) -> str | None:
    """Why a timestamp is not an RFC 3339 time in the sane range, or None.

    RFC 3339 as Kubernetes writes and Go parses it: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`.
    `datetime.fromisoformat` checks the calendar but takes other ISO 8601 shapes too (basic, week dates, no
    seconds or zone, a space for T, +HHMM), so the separators and the zone are checked first. (Hot path.)
    """
    if type(value) is not str:
        return f"must be an RFC 3339 time string, got {json_type(value)}"
    # the characters at offsets 4, 7, 10, 13 and 16, then the zone
    if value[4:17:3] == "--T::" and (value[-1] == "Z" or (value[-3] == ":" and value[-6] in "+-")):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if EARLIEST_YEAR <= value < LATEST_YEAR:
                return None
            return f"{quoted(value)} is outside the years {EARLIEST_YEAR} to {int(LATEST_YEAR) - 1}"
    return f"{quoted(value)} is not an RFC 3339 time"


def _times_problem(obj: dict[str, Any]) -> str | None:
    present = False
    for key in TIME_FIELDS:
        value = obj.get(key)
        if value is not None:
            present = True
            problem = time_problem(value)
            if problem is not None:
                return f"{key} {problem}"
    return None if present else "missing stageTimestamp"


def _strings_problem(path: str, value: Any) -> str | None:
    """A list of strings (groups, sourceIPs, extra values)."""
    if type(value) is not list:
        return _must_be(path, "a list of strings", value)
    for i, item in enumerate(value):
        if type(item) is not str:
            return _must_be(f"{path}[{i}]", "a string", item)
    return None


def _user_problem(path: str, user: Any) -> str | None:
    if type(user) is not dict:
        return _must_be(path, "an object", user)
    for key in ("username", "uid"):
        value = user.get(key)
        if value is not None and type(value) is not str:
            return _must_be(f"{path}.{key}", "a string", value)
    groups = user.get("groups")
    if groups is not None:
        problem = _strings_problem(f"{path}.groups", groups)
        if problem is not None:
            return problem
    extra = user.get("extra")
    if extra is not None:
        if type(extra) is not dict:
            return _must_be(f"{path}.extra", "an object of lists of strings", extra)
        for key, values in extra.items():
            if values is not None:
                problem = _strings_problem(f"{path}.extra[{quoted(key)}]", values)
                if problem is not None:
                    return problem
    return None


def _object_ref_problem(ref: Any) -> str | None:
    if type(ref) is not dict:
        return _must_be("objectRef", "an object", ref)
    for key in OBJECT_REF_FIELDS:
        value = ref.get(key)
        if value is not None and type(value) is not str:
            return _must_be(f"objectRef.{key}", "a string", value)
    return None


def _response_status_problem(status: Any) -> str | None:
    if type(status) is not dict:
        return _must_be("responseStatus", "an object", status)
    code = status.get("code")  # absent before the response is written (RequestReceived, some Panics)
    if code is not None and (type(code) is not int or code not in _INT32):
        return _must_be("responseStatus.code", "an integer (int32)", code)
    return None


def _annotations_problem(annotations: Any) -> str | None:
    if type(annotations) is not dict:
        return _must_be("annotations", "an object of strings", annotations)
    for key, value in annotations.items():
        if type(value) is not str:
            return _must_be(f"annotations[{quoted(key)}]", "a string", value)
    return None


def _header_problem(obj: dict[str, Any]) -> str | None:
    """kind, apiVersion, and the required auditID, stage, verb and requestURI."""
    kind = obj.get("kind")
    if kind is not None and kind != "Event":
        return f"kind {quoted(kind)} is not Event" if type(kind) is str else _must_be("kind", "a string", kind)
    api_version = obj.get("apiVersion")
    if api_version is not None and (type(api_version) is not str or api_version not in AUDIT_API_VERSIONS):
        if type(api_version) is not str:
            return _must_be("apiVersion", "a string", api_version)
        return f"apiVersion {quoted(api_version)} is not an audit API version (expected audit.k8s.io/v1)"
    audit_id = obj.get("auditID")
    if type(audit_id) is not str or not audit_id:
        return "missing auditID" if audit_id is None or audit_id == "" else _must_be("auditID", "a string", audit_id)
    stage = obj.get("stage")
    if type(stage) is not str or stage not in _STAGE_SET:
        if type(stage) is not str and stage is not None:
            return _must_be("stage", "a string", stage)
        return "missing stage" if stage is None else f"stage {quoted(stage)} is not one of {', '.join(STAGES)}"
    for key in ("verb", "requestURI"):
        value = obj.get(key)
        if type(value) is not str:
            return f"missing {key}" if value is None else _must_be(key, "a string", value)
    for key in ("level", "userAgent"):
        value = obj.get(key)
        if value is not None and type(value) is not str:
            return _must_be(key, "a string", value)
    return None


def _problem(obj: Any) -> str | None:
    """The first problem of an item, naming the field (the slow path: `validate_event` checks the same faster)."""
    if not isinstance(obj, dict):
        return f"expected an Event object, got {json_type(obj)}"
    problem = _header_problem(obj)
    for key in ("user", "impersonatedUser"):
        if problem is None and obj.get(key) is not None:
            problem = _user_problem(key, obj[key])
    if problem is None and obj.get("sourceIPs") is not None:
        problem = _strings_problem("sourceIPs", obj["sourceIPs"])
    if problem is None and obj.get("objectRef") is not None:
        problem = _object_ref_problem(obj["objectRef"])
    if problem is None and obj.get("responseStatus") is not None:
        problem = _response_status_problem(obj["responseStatus"])
    if problem is None and obj.get("annotations") is not None:
        problem = _annotations_problem(obj["annotations"])
    request, response = obj.get("requestObject"), obj.get("responseObject")
    if problem is None and request is not None and type(request) is not dict and type(request) is not list:
        problem = _must_be("requestObject", "an object (or a JSON-patch list)", request)
    if problem is None and response is not None and type(response) is not dict:
        problem = _must_be("responseObject", "an object", response)
    return problem if problem is not None else _times_problem(obj)


class _User(msgspec.Struct, gc=False):
    username: str = ""
    uid: str = ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}


class _Status(msgspec.Struct, gc=False):
    code: int | None = None  # msgspec takes no bool or float for an int


class _ObjectRef(msgspec.Struct, gc=False):
    """OBJECT_REF_FIELDS, each a string (other fields are not judged): cheaper to make than a dict of them."""

    resource: str | None = None  # None: absent or null, as the routing key has them
    namespace: str = ""
    name: str = ""
    uid: str = ""
    apiGroup: str = ""  # noqa: N815 - the JSON field's name
    apiVersion: str = ""  # noqa: N815
    resourceVersion: str = ""  # noqa: N815
    subresource: str | None = None


class _Fields(msgspec.Struct, gc=False, kw_only=True):
    """The fields `_problem` judges, typed as a valid event has them (msgspec checks the types at C speed); what
    a type cannot say (the enumerations, the int32 range, the times) `validate_event` checks after. In the order
    the apiserver writes them, which msgspec matches fastest."""

    kind: str  # required (a valid event may lack it: `_problem` judges that one), so that a key found says "Event"
    apiVersion: str = "audit.k8s.io/v1"  # noqa: N815 - the JSON field's name
    level: str = ""
    auditID: str  # noqa: N815
    stage: str
    requestURI: str  # noqa: N815
    verb: str
    user: _User = msgspec.field(default_factory=_User)
    impersonatedUser: Any = _ABSENT  # noqa: N815 - `_problem` judges these
    sourceIPs: list[str] = []  # noqa: N815
    userAgent: str = ""  # noqa: N815
    objectRef: _ObjectRef = msgspec.field(default_factory=_ObjectRef)  # noqa: N815
    responseStatus: _Status = msgspec.field(default_factory=_Status)  # noqa: N815
    requestObject: Any = None  # noqa: N815 - any JSON: only its type is checked, and nothing is copied
    responseObject: Any = None  # noqa: N815
    requestReceivedTimestamp: str | None = None  # noqa: N815
    stageTimestamp: str  # noqa: N815
    annotations: dict[str, str] = {}
    timestamp: Any = _ABSENT


def validate_event(obj: Any) -> str | None:
    """Why `obj` is not a usable audit event, or None when it is, e.g. `objectRef.resource must be a string, got
    list`. (Hot path, one call per event: an event whose fields have the types `_Fields` gives them, with no
    null among them, and whose enumerations and times are right is valid; any other goes to `_problem`, which
    names the field, or finds the event valid after all: a null field is an absent one. `obj` is decoded JSON,
    as everywhere here: msgspec would also take a tuple for a list, which JSON has not.)
    """
    return None if valid_route_key(obj) is not None else _problem(obj)


def valid_route_key(obj: Any) -> tuple[Any, ...] | None:
    """The routing key (`detectors.scope.route_key`: stage, verb, objectRef.resource, objectRef.subresource,
    responseStatus.code) of an event that `validate_event`'s fast path finds valid, read from what it decoded;
    None when the fast path does not decide (then ask `validate_event`). Replay's reader takes each event's key
    here rather than reading the five fields again. (The fast path itself: one call per event, so written here
    rather than called.)"""
    try:
        fields = _convert(obj, _Fields)
        stamp, received = fields.stageTimestamp, fields.requestReceivedTimestamp
        _fromisoformat(stamp)  # the calendar; the shape and the range are checked below, as in time_problem
        if received is not None and received != stamp:
            _fromisoformat(received)
    except (msgspec.ValidationError, ValueError):  # a type, or not a date
        return None
    request, response, code = fields.requestObject, fields.responseObject, fields.responseStatus.code
    if (
        fields.kind == "Event"
        and fields.apiVersion in AUDIT_API_VERSIONS
        and fields.auditID
        and fields.stage in _STAGE_SET
        and (code is None or code in _INT32)
        and (request is None or type(request) is dict or type(request) is list)
        and (response is None or type(response) is dict)
        and fields.impersonatedUser is _ABSENT
        and fields.timestamp is _ABSENT
        and stamp[4:17:3] == "--T::"
        and (stamp[-1] == "Z" or (stamp[-3] == ":" and stamp[-6] in "+-"))
        and EARLIEST_YEAR <= stamp < LATEST_YEAR
        and (
            received is None
            or received == stamp
            or (
                received[4:17:3] == "--T::"
                and (received[-1] == "Z" or (received[-3] == ":" and received[-6] in "+-"))
                and EARLIEST_YEAR <= received < LATEST_YEAR
            )
        )
    ):
        return (fields.stage, fields.verb, fields.objectRef.resource, fields.objectRef.subresource, code)
    return None


_convert = msgspec.convert
_fromisoformat = datetime.fromisoformat
