"""Decoding and validating audit payloads; the field accessor over real event shapes."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from detectors.errors import EventError
from detectors.events import AuditEvent, parse_body, split_document
from detectors.fieldpath import PathError, compile_path
from detectors.virtual_roots import patch_overlay
from tests.support.events import exec_event, find_event, lease_event


def test_eventlist_single_event_and_arrays_of_either() -> None:
    e1, e2 = exec_event(), lease_event()
    lst = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": [e1, e2]}
    for body, count in ((lst, 2), (e1, 1), ([e1, e2], 2), ([lst, e1], 3), ([], 0)):
        events, rejected = parse_body(orjson.dumps(body), origin="t")
        assert (len(events), rejected.total, rejected.kept) == (count, 0, [])


def test_origins_name_the_item() -> None:
    lst = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [exec_event(), lease_event()]}
    events, _ = parse_body(orjson.dumps(lst), origin="webhook")
    assert [e.origin for e in events] == ["webhook#items[0]", "webhook#items[1]"]
    events, _ = parse_body(orjson.dumps([exec_event(), lst]), origin="f.jsonl:3")
    assert [e.origin for e in events] == ["f.jsonl:3#[0]", "f.jsonl:3#[1].items[0]", "f.jsonl:3#[1].items[1]"]


def test_v1beta1_and_kindless_events_are_accepted_when_they_look_like_audit_events() -> None:
    beta = exec_event()
    beta["apiVersion"] = "audit.k8s.io/v1beta1"
    bare = exec_event()
    del bare["kind"], bare["apiVersion"]
    for doc in (beta, bare):
        events, rejected = split_document(doc)
        assert len(events) == 1 and not rejected


def test_v1alpha1_timestamp_field_is_the_event_time() -> None:
    old = exec_event()
    del old["stageTimestamp"], old["requestReceivedTimestamp"]
    old["timestamp"] = "2019-05-01T12:00:00Z"
    events, _ = split_document(old)
    assert events[0].time.isoformat() == "2019-05-01T12:00:00+00:00"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"kind": "Pod", "apiVersion": "v1"}, "kind 'Pod' is not Event or EventList"),
        ({"kind": "EventList", "apiVersion": "audit.k8s.io/v2", "items": []}, "apiVersion 'audit.k8s.io/v2'"),
        ({"metadata": {}}, "not an audit event"),
        ("text", "got string"),
    ],
)
def test_whole_document_errors(doc: object, message: str) -> None:
    with pytest.raises(EventError, match=message):
        split_document(doc)


def test_malformed_json_message_has_position() -> None:
    with pytest.raises(EventError, match=r"malformed JSON: .* at line 2 column \d+"):
        parse_body(b'{"kind": "EventList",\n "items": [,]}')


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.pop("auditID"), "missing auditID"),
        (lambda e: e.update(auditID=""), "missing auditID"),
        (lambda e: e.update(stage="Done"), "stage 'Done' is not one of"),
        (lambda e: e.pop("verb"), "missing verb"),
        (lambda e: e.pop("requestURI"), "missing requestURI"),
        (lambda e: e.update(stageTimestamp="yesterday"), "'yesterday' is not an RFC 3339 time"),
        (lambda e: e.update(user="alice"), "user must be an object"),
        (lambda e: e.update(sourceIPs="10.0.0.1"), "sourceIPs must be a list"),
        (lambda e: e.update(kind="Pod"), "kind 'Pod' is not Event"),
    ],
)
def test_item_validation_reasons(mutate: object, reason: str) -> None:
    bad = exec_event()
    mutate(bad)  # type: ignore[operator]
    events, rejected = split_document(
        {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [bad, exec_event()]}
    )
    assert len(events) == 1
    assert rejected.total == 1 and reason in rejected.kept[0].reason and rejected.kept[0].origin == "#items[0]"


def test_microsecond_and_nanosecond_timestamps() -> None:
    e = exec_event()
    e["stageTimestamp"] = "2026-11-20T10:00:30.123456789Z"
    events, _ = split_document(e)
    assert events[0].time.microsecond == 123456
    assert AuditEvent(raw=exec_event()).time.microsecond != 0


def test_accessor_dotted_paths_quoted_keys_and_lists() -> None:
    ev = AuditEvent(raw=exec_event())
    assert ev.get("objectRef.subresource") == "exec"
    assert ev.get("user.groups") == ["contractors", "system:authenticated"]
    assert ev.get("annotations['authorization.k8s.io/decision']") == "allow"
    assert ev.get("$decision") == "allow"
    assert ev.get("responseStatus.code") == 101
    assert ev.get("objectRef.nothing") is None
    assert ev.get("objectRef.nothing", "default") == "default"


def test_virtual_roots_cover_pod_templates() -> None:
    dep = AuditEvent(
        raw=find_event(
            lambda e: e.get("objectRef", {}).get("resource") == "deployments" and e["stage"] == "ResponseComplete"
        )
    )
    assert dep.get("$containers[*].securityContext.privileged") == [True]
    assert dep.get("$podSpecs[*].containers[*].image") == ["docker.io/library/alpine:3.20"]
    cron = copy.deepcopy(dep.raw)
    cron["objectRef"]["resource"] = "cronjobs"
    template = cron["requestObject"]["spec"].pop("template")
    cron["requestObject"]["spec"] = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}}
    assert AuditEvent(raw=cron).get("$containers[*].securityContext.privileged") == [True]


def test_json_patch_bodies_are_arrays_and_become_a_partial_object() -> None:
    ops = [
        {"op": "add", "path": "/spec/template/spec/containers/0/securityContext", "value": {"privileged": True}},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "remove", "path": "/metadata/labels/x"},
        {"op": "add", "path": "/metadata/annotations/a~1b", "value": "c"},
    ]
    assert patch_overlay(ops) == {
        "spec": {"template": {"spec": {"containers": [{"securityContext": {"privileged": True}}]}}, "replicas": 3},
        "metadata": {"annotations": {"a/b": "c"}},
    }
    raw = find_event(
        lambda e: e.get("objectRef", {}).get("resource") == "deployments" and e["stage"] == "ResponseComplete"
    )
    raw["verb"] = "patch"
    raw["requestObject"] = ops
    ev = AuditEvent(raw=raw)
    assert ev.get("requestObject[0].op") == "add"
    assert ev.get("$containers[*].securityContext.privileged") == [True]
    assert ev.get("$request.spec.replicas") == 3


@pytest.mark.parametrize("bad", ["", "a..b", ".a", "a[", "$nope.x", "a[x]"])
def test_bad_paths_are_rejected(bad: str) -> None:
    with pytest.raises(PathError):
        compile_path(bad)


@pytest.mark.parametrize(
    "ips", [None, [], ["10.0.0.1"], ["10.0.0.1", "10.0.0.2"], ["a", None], ["a", ["x", "y"]], ["a", ["x"]], ["a", []],
            {"a": 1}, "10.0.0.1", [7]],
)  # fmt: skip
def test_an_indexed_path_reads_as_its_walk(ips: Any) -> None:
    """`sourceIPs[-1]` (a stateful rule's usual key) has a path of its own; it reads what the walk reads."""
    path = compile_path("sourceIPs[-1]")
    event = AuditEvent(raw={} if ips is None else {"sourceIPs": ips})
    walked = path.values(event)
    assert path.value(event) == (walked[0] if len(walked) == 1 else walked or None)


@pytest.mark.parametrize(
    "stamp",
    ["2026-11-20T10:00:00Z", "2026-11-20T10:00:00.123456789Z", "2026-11-20T10:00:00.5+05:30", "1970-01-01T00:00:00Z",
     "1969-12-31T23:59:59.999999-00:01", "0001-01-01T00:00:00+14:00", "0001-01-01T00:30:00-01:00",
     "9999-12-31T23:59:59-14:00", "9999-12-31T12:00:00+01:00", "2026-11-20T10:00:00", "2026-11-20", "not a time", "",
     7, None, ["2026-11-20T10:00:00Z"]],
)  # fmt: skip
def test_the_event_seconds_are_those_of_its_time(stamp: object) -> None:
    event = AuditEvent({"stageTimestamp": stamp})
    assert event.timestamp == AuditEvent({"stageTimestamp": stamp}).time.timestamp()


def _walked_value(raw: dict[str, Any], text: str) -> Any:
    """A plain path's value as the general reader takes it: through dicts, a list on the way read as the values."""
    node: Any = raw
    for key in text.split("."):
        if not isinstance(node, dict):
            return compile_path(text).values(AuditEvent(raw)) if isinstance(node, list) else None
        node = node.get(key)
    return node


@pytest.mark.parametrize(
    "ref", [None, {}, {"resource": "pods"}, {"resource": ["a", "b"]}, {"resource": None}, {"resource": 7}, "pods", 7,
            [{"resource": "pods"}, {"resource": "nodes"}], [], {"resource": {"x": 1}}],
)  # fmt: skip
def test_a_path_of_one_or_two_keys_reads_as_the_general_reader(ref: Any) -> None:
    """`user.username`, `userAgent` (group_by and terms keys) have readers of their own; they read what it reads."""
    raw = {} if ref is None else {"objectRef": ref}
    for text in ("objectRef", "objectRef.resource"):
        assert compile_path(text).value(AuditEvent(raw)) == _walked_value(raw, text)


@pytest.mark.parametrize(
    "raw",
    [{}, {"user": {"username": "alice"}}, {"user": {"username": ""}}, {"impersonatedUser": {"username": "bob"}},
     {"responseStatus": {"code": 403}}, {"annotations": {"authorization.k8s.io/decision": "allow"}}],
)  # fmt: skip
def test_a_single_value_root_alone_reads_as_its_values(raw: dict[str, Any]) -> None:
    """`$principal` and `$decision` in a key are read without their list: the same value, or None for none."""
    for text in ("$principal", "$decision"):
        path = compile_path(text)
        values = path.values(AuditEvent(raw))
        assert path.value(AuditEvent(raw)) == (values[0] if len(values) == 1 else values or None)
