"""Validation admits only events whose every read field has its type, and times that parse in a sane range."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.events import AuditEvent, parse_time, split_document
from detectors.fieldpath import compile_path
from detectors.scope import route_key
from detectors.validation import EARLIEST_YEAR, LATEST_YEAR, time_problem, valid_route_key, validate_event
from detectors.validation import _problem as slow_problem  # the fast path must agree with it
from detectors.virtual_roots import VIRTUAL_ROOTS
from tests.support.events import exec_event, lease_event, scenario_events

WRONG = {"list": ["x"], "object": {"a": "x"}, "number": 7, "bool": True, "null": None, "string": "x"}


def with_field(path: str, value: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
    """An exec event with `path` (dotted) set to `value`; parents are created as objects."""
    event = copy.deepcopy(event or exec_event())
    *parents, last = path.split(".")
    node = event
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return event


def reason_of(event: Any) -> str | None:
    fast = validate_event(event)
    assert fast == slow_problem(event), "the fast path and the slow path disagree"
    return fast


STRINGS = ["kind", "apiVersion", "auditID", "stage", "verb", "requestURI", "userAgent", "level"]
STRINGS += [f"{user}.{key}" for user in ("user", "impersonatedUser") for key in ("username", "uid")]
STRINGS += [f"objectRef.{key}" for key in (
    "resource", "namespace", "name", "uid", "apiGroup", "apiVersion", "resourceVersion", "subresource")]  # fmt: skip
REQUIRED = {"auditID", "stage", "verb", "requestURI"}


@pytest.mark.parametrize("path", STRINGS)
@pytest.mark.parametrize("wrong", ["list", "object", "number", "bool", "null"])
def test_every_string_field_refuses_every_other_type(path: str, wrong: str) -> None:
    reason = reason_of(with_field(path, WRONG[wrong]))
    if wrong == "null" and path not in REQUIRED:
        assert reason is None  # null is absent, as for the apiserver's own decoder
    elif wrong == "null":
        assert reason == f"missing {path}"
    else:
        assert reason == f"{path} must be a string, got {wrong}"


@pytest.mark.parametrize(
    ("path", "what", "allowed"),
    [
        ("user", "an object", {"object"}),
        ("impersonatedUser", "an object", {"object"}),
        ("user.groups", "a list of strings", {"list"}),
        ("impersonatedUser.groups", "a list of strings", {"list"}),
        ("user.extra", "an object of lists of strings", {"object"}),
        ("sourceIPs", "a list of strings", {"list"}),
        ("objectRef", "an object", {"object"}),
        ("responseStatus", "an object", {"object"}),
        ("annotations", "an object of strings", {"object"}),
        ("requestObject", "an object (or a JSON-patch list)", {"object", "list"}),
        ("responseObject", "an object", {"object"}),
    ],
)
@pytest.mark.parametrize("wrong", ["list", "object", "number", "bool", "string", "null"])
def test_every_container_field_refuses_every_other_type(path: str, what: str, allowed: set[str], wrong: str) -> None:
    valid_objects = {"annotations": {"x": "y"}, "user.extra": {"k": ["v"]}}
    value: Any = valid_objects.get(path, {"x": ["y"]}) if wrong == "object" else WRONG[wrong]
    reason = reason_of(with_field(path, value))
    if wrong in allowed or wrong == "null":
        assert reason is None
    else:
        assert reason == f"{path} must be {what}, got {wrong}"


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("user.groups", ["a", 1], "user.groups[1] must be a string, got number"),
        ("user.groups", ["a", ["b"]], "user.groups[1] must be a string, got list"),
        ("impersonatedUser.groups", [None], "impersonatedUser.groups[0] must be a string, got null"),
        ("user.extra", {"k": "v"}, "user.extra['k'] must be a list of strings, got string"),
        ("user.extra", {"k": ["v", 2]}, "user.extra['k'][1] must be a string, got number"),
        ("sourceIPs", ["10.0.0.1", {"ip": 1}], "sourceIPs[1] must be a string, got object"),
        ("annotations", {"a": "b", "c": 1}, "annotations['c'] must be a string, got number"),
        ("annotations", {"a": None}, "annotations['a'] must be a string, got null"),
        ("responseStatus.code", "200", "responseStatus.code must be an integer (int32), got string"),
        ("responseStatus.code", 200.0, "responseStatus.code must be an integer (int32), got number"),
        ("responseStatus.code", True, "responseStatus.code must be an integer (int32), got bool"),
        ("responseStatus.code", [200], "responseStatus.code must be an integer (int32), got list"),
        ("responseStatus.code", 2**31, "responseStatus.code must be an integer (int32), got number"),
        ("stage", "Done", "stage 'Done' is not one of RequestReceived, ResponseStarted, ResponseComplete, Panic"),
        ("kind", "Pod", "kind 'Pod' is not Event"),
        ("apiVersion", "v1", "apiVersion 'v1' is not an audit API version (expected audit.k8s.io/v1)"),
        ("auditID", "", "missing auditID"),
    ],
)
def test_values_inside_containers_and_enumerations(path: str, value: Any, reason: str) -> None:
    assert reason_of(with_field(path, value)) == reason


def test_code_may_be_absent_and_unknown_fields_are_left_alone() -> None:
    """The apiserver omits the code before a response (RequestReceived); fields the pipeline does not read
    are not its business (objectRef.fieldPath of older versions, responseStatus.details)."""
    event = exec_event()
    del event["responseStatus"]["code"]
    event["objectRef"]["fieldPath"] = ["x"]
    event["responseStatus"]["details"] = {"causes": [{"field": 1}]}
    event["somethingNew"] = [[1, 2], {"a": None}]
    assert reason_of(event) is None
    assert reason_of(with_field("requestObject", [{"op": "add", "path": "/a", "value": 1}])) is None


def test_the_reason_of_a_long_or_odd_value_is_short() -> None:
    reason = reason_of(with_field("stage", "x" * 100_000))
    assert reason is not None and len(reason) < 300
    reason = reason_of(with_field("stageTimestamp", "2026-" + "9" * 100_000))
    assert reason is not None and len(reason) < 300


# Field paths the fast path types, and JSON values to put there (or "DELETE" the field): every verdict of the
# fast path must be the slow path's, on any mix of them.
FAST_PATHS = [*STRINGS, "stageTimestamp", "requestReceivedTimestamp", "timestamp", "user", "impersonatedUser",
              "user.groups", "user.extra", "user.extra.k", "sourceIPs", "objectRef", "objectRef.fieldPath",
              "responseStatus", "responseStatus.code", "annotations", "annotations.a", "requestObject",
              "responseObject", "somethingNew"]  # fmt: skip
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["Event", "audit.k8s.io/v1beta1", "ResponseComplete", "2026-11-20T10:00:00Z",
                       "2026-11-20T10:00:00.5+01:00", "2026-02-30T10:00:00Z", "0001-01-01T00:00:00Z", 200, 2**31]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "k", "code"]), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from(scenario_events()),
    changes=st.lists(st.tuples(st.sampled_from(FAST_PATHS), JSON_VALUES | st.just("DELETE")), max_size=3),
)
def test_the_fast_path_answers_as_the_slow_path(base: dict[str, Any], changes: list[tuple[str, Any]]) -> None:
    reason_of(changed(base, changes))


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from(scenario_events()),
    changes=st.lists(st.tuples(st.sampled_from(FAST_PATHS), JSON_VALUES | st.just("DELETE")), max_size=3),
)
def test_the_route_key_found_by_validation_is_the_events_own(
    base: dict[str, Any], changes: list[tuple[str, Any]]
) -> None:
    event = changed(base, changes)
    key = valid_route_key(event)
    if key is not None:  # replay's reader routes the event by this key: it must be the one read from the event
        assert validate_event(event) is None
        assert key == route_key(event)


def changed(base: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    event = copy.deepcopy(base)
    for path, value in changes:
        *parents, last = path.split(".")
        node: Any = event
        for key in parents:
            node = node.setdefault(key, {}) if type(node) is dict else None
        if type(node) is dict:
            if value == "DELETE":
                node.pop(last, None)
            else:
                node[last] = value
    return event


def test_every_real_event_passes_the_fast_path() -> None:
    for event in scenario_events():
        assert validate_event(event) is None, event["auditID"]
        assert valid_route_key(event) == route_key(event), event["auditID"]


@pytest.mark.parametrize(
    ("path", "value"),
    [("objectRef", "DELETE"), ("objectRef.resource", None), ("objectRef.resource", ""), ("objectRef.resource", "DELETE"),
     ("objectRef.subresource", None), ("objectRef.subresource", ""), ("responseStatus", "DELETE"),
     ("responseStatus.code", None), ("responseStatus.code", "DELETE"), ("responseStatus.code", 0)],
)  # fmt: skip
def test_absent_null_and_empty_key_fields_keep_their_route(path: str, value: Any) -> None:
    event = changed(exec_event(), [(path, value)])
    assert validate_event(event) is None
    assert valid_route_key(event) == route_key(event)  # an absent or null field is None, "" stays ""
    assert valid_route_key(event) is not None  # the common shapes are all read on the fast path


# --- timestamps -------------------------------------------------------------------------------------------

TIME_FIELDS = ["stageTimestamp", "requestReceivedTimestamp"]


@pytest.mark.parametrize("field", TIME_FIELDS)
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0001-01-01T00:00:00+14:00", "is outside the years"),
        ("0001-01-01T00:00:00Z", "is outside the years"),
        ("9999-12-31T23:59:59-14:00", "is outside the years"),
        ("9999-12-31T23:59:59.999999Z", "is outside the years"),
        ("2200-01-01T00:00:00Z", "is outside the years"),
        ("1969-12-31T23:59:59Z", "is outside the years"),
        ("", "is not an RFC 3339 time"),
        ("yesterday", "is not an RFC 3339 time"),
        ("2026-11-20", "is not an RFC 3339 time"),
        ("2026-11-20T10:00:00", "is not an RFC 3339 time"),  # no zone
        ("2026-11-20 10:00:00Z", "is not an RFC 3339 time"),
        ("20261120T100000Z", "is not an RFC 3339 time"),
        ("2026-W47-5T10:00:00Z", "is not an RFC 3339 time"),
        ("2026-11-20T10:00Z", "is not an RFC 3339 time"),
        ("2026-11-20T10:00:00+0100", "is not an RFC 3339 time"),
        ("2026-02-30T10:00:00Z", "is not an RFC 3339 time"),
        ("2026-11-20T24:00:00Z", "is not an RFC 3339 time"),
        ("2026-11-20T10:00:00+24:00", "is not an RFC 3339 time"),
        ("２０２６-11-20T10:00:00Z", "is not an RFC 3339 time"),
        ("2026-11-20T10:00:00\udc80Z", "is not an RFC 3339 time"),
    ],
)
def test_time_edges_are_refused_naming_the_field(field: str, value: str, problem: str) -> None:
    reason = reason_of(with_field(field, value))
    assert reason is not None and reason.startswith(f"{field} ") and problem in reason


@pytest.mark.parametrize("wrong", ["list", "object", "number", "bool"])
@pytest.mark.parametrize("field", [*TIME_FIELDS, "timestamp"])
def test_times_must_be_strings(field: str, wrong: str) -> None:
    assert reason_of(with_field(field, WRONG[wrong])) == f"{field} must be an RFC 3339 time string, got {wrong}"


@pytest.mark.parametrize(
    "value",
    [
        "1970-01-01T00:00:00Z",
        "1970-01-01T00:00:00+14:00",  # 1969 in UTC: still far from datetime's limits
        "2199-12-31T23:59:59.999999999-14:00",
        "2026-11-20T10:00:30.123456789Z",
        "2026-11-20T10:00:30.1+05:30",
        "2026-11-20T10:00:30,5Z",  # Go's parser takes a comma too
    ],
)
def test_times_in_range_parse_and_convert(value: str) -> None:
    assert time_problem(value) is None
    event = AuditEvent(raw=with_field("stageTimestamp", value))
    assert validate_event(event.raw) is None
    assert 1969 <= event.time.year <= 2200
    assert event.timestamp == event.time.timestamp()


def test_the_range_is_what_the_docs_say() -> None:
    assert (EARLIEST_YEAR, LATEST_YEAR) == ("1970", "2200")


def test_an_event_needs_a_time_and_an_old_one_may_use_timestamp() -> None:
    event = exec_event()
    del event["stageTimestamp"], event["requestReceivedTimestamp"]
    assert reason_of(event) == "missing stageTimestamp"
    event["timestamp"] = "2019-05-01T12:00:00Z"
    assert reason_of(event) is None
    event["timestamp"] = "0001-01-01T00:00:00+14:00"
    assert "timestamp '0001-01-01T00:00:00+14:00' is outside the years" in str(reason_of(event))


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", [1], "x", None])
def test_parse_time_never_raises(value: Any) -> None:
    assert parse_time(value) is None


# --- what validation lets through is safe to read ---------------------------------------------------------


def admitted_variants() -> list[dict[str, Any]]:
    """Valid events with every optional field absent, null or empty, and odd but legal contents."""
    base = exec_event()
    out = [base, lease_event()]
    optional = ["kind", "apiVersion", "level", "userAgent", "user", "impersonatedUser", "sourceIPs", "objectRef",
                "responseStatus", "annotations", "requestObject", "responseObject", "requestReceivedTimestamp"]  # fmt: skip
    for key in optional:
        for value in (None, "absent"):
            event = copy.deepcopy(base)
            if value == "absent":
                event.pop(key, None)
            else:
                event[key] = value
            out.append(event)
    for key, value in [
        ("user", {}), ("user", {"groups": [], "extra": {"k": []}}), ("impersonatedUser", {"username": ""}),
        ("objectRef", {}), ("objectRef", {"resource": ""}), ("responseStatus", {}), ("annotations", {}),
        ("sourceIPs", []), ("requestObject", []), ("requestObject", [1, "x", {"op": "add", "path": 5}]),
        ("requestObject", {"spec": {"containers": "oops"}}), ("responseObject", {}),
    ]:  # fmt: skip
        out.append(with_field(key, value, base))
    assert all(validate_event(e) is None for e in out)
    return out


ACCESSORS = [
    "audit_id", "stage", "verb", "request_uri", "user", "username", "groups", "impersonated_username", "principal",
    "source_ips", "user_agent", "resource", "subresource", "namespace", "name", "response_code", "decision",
    "stage_timestamp", "time", "timestamp",
]  # fmt: skip


@pytest.mark.parametrize("accessor", ACCESSORS)
def test_every_accessor_reads_every_admitted_variant(accessor: str) -> None:
    for raw in admitted_variants():
        getattr(AuditEvent(raw=raw), accessor)


@pytest.mark.parametrize("root", sorted(VIRTUAL_ROOTS))
def test_every_virtual_root_reads_every_admitted_variant(root: str) -> None:
    for raw in admitted_variants():
        event = AuditEvent(raw=raw)
        compile_path(f"${root}").values(event)
        for path in ("objectRef.resource", "user.groups", "annotations['a/b']", "requestObject.spec[*].x"):
            compile_path(path).values(event)


def test_hashing_places_take_every_admitted_variant() -> None:
    """Candidate selection, the anomaly scope and the dedupe keys hash these fields."""
    from detectors.loading.formats import LoadOptions
    from detectors.pipeline import Pipeline
    from detectors.registry import load_rules

    pipeline = Pipeline(load_rules(["builtin"], LoadOptions()))
    for raw in admitted_variants():
        pipeline.process(AuditEvent(raw=raw))


Mutation = Callable[[dict[str, Any]], object]


def test_split_document_rejects_each_poisoned_item_and_keeps_the_rest() -> None:
    items: list[Any] = [exec_event()]
    for path in ("stage", "apiVersion", "objectRef.resource", "user.username", "impersonatedUser.username"):
        items += [with_field(path, ["x"]), with_field(path, {"x": 1})]
    events, rejected = split_document(orjson.loads(orjson.dumps(items)))
    assert len(events) == 1 and rejected.total == 10
    assert all("must be a string" in r.reason for r in rejected.kept)
