"""Per-item limits (nesting, size) checked without recursion, capped rejections, the stored copy's cap, and the
messages for text that is not JSON."""

from __future__ import annotations

import copy
import resource
import time
from typing import Any

import orjson
import pytest

from detectors.alerts import Alert, Severity, alert_id, make_alert
from detectors.errors import EventError
from detectors.events import MAX_KEPT_REJECTED, AuditEvent, Rejections, parse_body, split_document
from detectors.limits import (
    MAX_ALERT_FIELD_BYTES,
    MAX_ALERT_ITEMS,
    MAX_ALERT_TEXT_BYTES,
    MAX_EVENT_BYTES,
    MAX_EVENT_DEPTH,
    MAX_GROUP_KEY_BYTES,
    MAX_STORED_EVENT_BYTES,
    ORJSON_MAX_DEPTH,
    TRUNCATED_ANNOTATION,
    cap_key,
    cap_strings,
    cap_text,
    cut_deep,
    depth_exceeds,
    loads_bounded,
    truncate_event,
)
from detectors.validation import validate_event
from tests.support.events import exec_event


def nested(depth: int, leaf: Any = 1) -> Any:
    """Lists and objects alternating, `depth` levels (the value itself is level 1)."""
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def nested_text(depth: int) -> bytes:
    """JSON text of `nested(depth)` (orjson.dumps stops at 254 levels)."""
    opens = [b"[" if i % 2 else b'{"k":' for i in reversed(range(depth))]
    closes = [b"]" if i % 2 else b"}" for i in range(depth)]
    return b"".join(opens) + b"1" + b"".join(closes)


def event_text(depth: int) -> bytes:
    """An exec event whose requestObject makes the whole event `depth` levels deep (depth >= 2)."""
    return orjson.dumps(exec_event())[:-1] + b',"requestObject":' + nested_text(depth - 1) + b"}"


def test_orjson_refuses_nesting_past_its_limit() -> None:
    """loads_bounded relies on it: an upgrade that changes the limit must fail here, not let deep items in."""
    orjson.loads(b"[" * ORJSON_MAX_DEPTH + b"]" * ORJSON_MAX_DEPTH)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(b"[" * (ORJSON_MAX_DEPTH + 1) + b"]" * (ORJSON_MAX_DEPTH + 1))


@pytest.mark.parametrize("depth", [1, 5, MAX_EVENT_DEPTH, MAX_EVENT_DEPTH + 1, 600, 1020, 100_000])
def test_depth_is_measured_without_recursion(depth: int) -> None:
    value = nested(depth)
    assert depth_exceeds(value, MAX_EVENT_DEPTH) is (depth > MAX_EVENT_DEPTH)
    assert depth_exceeds(value, depth) is False and depth_exceeds(value, depth - 1) is True


@pytest.mark.parametrize("depth", [MAX_EVENT_DEPTH, MAX_EVENT_DEPTH + 1, 600, 1020])
@pytest.mark.parametrize("in_list", [False, True])
def test_events_deeper_than_the_limit_are_rejected_in_every_decoding_path(depth: int, in_list: bool) -> None:
    event = event_text(depth)
    assert not depth_exceeds(orjson.loads(event), depth) and depth_exceeds(orjson.loads(event), depth - 1)
    other = orjson.dumps(exec_event())
    body = b'{"kind":"EventList","items":[' + event + b"," + other + b"]}" if in_list else event
    padded = body[:-1] + b',"pad":"' + b"x" * 70_000 + b'"}'  # large: parsed inside the depth wrapper
    for text in (body, padded):
        events, rejected = parse_body(text)
        too_deep = depth > MAX_EVENT_DEPTH
        assert (len(events), rejected.total) == ((1 if in_list else 0) + (not too_deep), int(too_deep))
        if too_deep:
            assert rejected.kept[0].reason == f"nested deeper than {MAX_EVENT_DEPTH} levels"
            assert not depth_exceeds(rejected.kept[0].payload, MAX_EVENT_DEPTH)  # what quarantine gets


def test_loads_bounded_is_orjson_for_any_text() -> None:
    for text in (b"1", b"[1,2]", b'{"a": [1, {"b": null}]}', b"[" * 200 + b"]" * 200):
        big = text if len(text) > 70_000 else b" " * 70_000 + text
        for data in (text, big):
            doc, shallow = loads_bounded(data)
            assert doc == orjson.loads(data)
            assert shallow is (not depth_exceeds(doc, MAX_EVENT_DEPTH))
    for bad in (b"", b"1,2", b"0],[0", b"[1", b"]", b"[" * 2000 + b"]" * 2000):
        for data in (bad, b" " * 70_000 + bad):
            with pytest.raises(orjson.JSONDecodeError):
                loads_bounded(data)


def test_cut_deep_keeps_the_top_and_notes_the_cut() -> None:
    value = {"a": nested(500), "b": "kept"}
    cut = cut_deep(value, 5)
    assert cut["b"] == "kept" and not depth_exceeds(cut, 5)
    assert "<cut: nested deeper than 5 levels>" in orjson.dumps(cut).decode()
    shallow = {"a": [1, {"b": 2}]}
    assert cut_deep(shallow) is shallow


def test_an_event_over_the_size_limit_is_rejected_naming_its_size() -> None:
    event = exec_event()
    event["requestObject"] = {"data": "x" * MAX_EVENT_BYTES}
    big_list = orjson.dumps({"kind": "EventList", "items": [event, exec_event()]})
    events, rejected = parse_body(big_list)
    assert len(events) == 1 and rejected.total == 1
    assert f"more than the limit of {MAX_EVENT_BYTES}" in rejected.kept[0].reason
    events, rejected = parse_body(orjson.dumps(event))
    assert not events and "more than the limit" in rejected.kept[0].reason


def test_junk_items_cost_a_counter_not_an_object_each() -> None:
    body = b'{"kind":"EventList","items":[' + b",".join([b"0"] * 2_000_000) + b"]}"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    events, rejected = parse_body(body, origin="t")
    assert time.monotonic() - started < 20
    assert (len(events), rejected.total, len(rejected.kept)) == (0, 2_000_000, MAX_KEPT_REJECTED)
    assert rejected.kept[0].origin == "t#items[0]" and rejected.kept[-1].origin == f"t#items[{MAX_KEPT_REJECTED - 1}]"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: decoded JSON, no more


def test_rejections_keep_the_first_and_count_all() -> None:
    first, second = Rejections(keep=3), Rejections(keep=3)
    _, one = split_document([0, 1, 2, 3, 4])
    first.merge(one)
    second.merge(first)
    assert (first.total, len(first.kept), second.total, len(second.kept)) == (5, 3, 5, 3)
    assert [r.origin for r in second.kept] == ["#[0]", "#[1]", "#[2]"]
    assert not Rejections() and Rejections.of(one.kept[0])


# --- decoding errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"items": ["\xff"]}', "invalid UTF-8 at byte 12"),
        (b'[{"a": "\xed\xa0\x80"}]', "invalid UTF-8 at byte 8"),  # an encoded surrogate
        (b"[1, 2, \xc3]", "invalid UTF-8 at byte 7"),
        (b"\xef\xbb\xbf[]", "malformed JSON: UTF-8 byte order mark (BOM) is not supported at line 1 column 1 (char 0)"),
        (
            b'{"kind": "EventList",\n "items": [,]}',
            "malformed JSON: unexpected character, expected a JSON value at line 2 column 12 (char 33)",
        ),
        (b"", "malformed JSON: "),  # orjson words an empty text and a blank one differently
    ],
)
def test_bodies_that_are_not_json_say_what_and_where(body: bytes, message: str) -> None:
    for data in (body, body + b" " * 70_000):  # also through the depth wrapper
        with pytest.raises(EventError) as caught:
            parse_body(data)
        assert str(caught.value).startswith(message) and (
            len(message) > 20 or "at line 1 column 1" in str(caught.value)
        )


@pytest.mark.parametrize(
    "doc", [{"kind": [[[1]]]}, {"kind": "EventList", "apiVersion": {"a": 1}}, {"kind": nested(900)}]
)
def test_whole_documents_of_odd_types_are_refused_without_crashing(doc: Any) -> None:
    with pytest.raises(EventError, match="must be a string"):
        split_document(doc)


# --- the stored copy --------------------------------------------------------------------------------------


def test_a_small_event_is_stored_as_it_is() -> None:
    event = exec_event()
    assert truncate_event(event) == event


def test_a_large_event_loses_its_objects_first_as_the_apiserver_truncates() -> None:
    event = exec_event()
    event["requestObject"] = {"spec": {"data": "x" * MAX_STORED_EVENT_BYTES}}
    event["responseObject"] = {"kind": "Status"}
    original = copy.deepcopy(event)
    stored = truncate_event(event)
    assert event == original  # not modified
    assert "requestObject" not in stored and "responseObject" not in stored
    assert stored["annotations"][TRUNCATED_ANNOTATION] == "true"
    assert stored["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert {k: v for k, v in stored.items() if k != "annotations"} == {
        k: v for k, v in original.items() if k not in ("annotations", "requestObject", "responseObject")
    }
    assert validate_event(stored) is None


def test_an_alert_stores_the_capped_copy_of_a_large_event() -> None:
    event = exec_event()
    event["requestObject"] = {"metadata": {"annotations": {"note": "x" * (4 * MAX_STORED_EVENT_BYTES)}}}
    event["responseObject"] = {"metadata": {}, "data": [1] * 10}
    alert = make_alert(rule_id="r", rule_name="R", severity=Severity.HIGH, mitre=(), message="m",
                       event=AuditEvent(event, "webhook#items[0]"))  # fmt: skip
    assert len(orjson.dumps(alert.event)) <= MAX_STORED_EVENT_BYTES
    assert "requestObject" not in alert.event and alert.event["annotations"][TRUNCATED_ANNOTATION] == "true"
    small = exec_event()
    stored = make_alert(rule_id="r", rule_name="R", severity=Severity.HIGH, mitre=(), message="m",
                        event=AuditEvent(small, "webhook#items[1]")).event  # fmt: skip
    assert TRUNCATED_ANNOTATION not in stored["annotations"] and stored.keys() == small.keys()


def test_a_size_beyond_orjson_is_measured_by_the_json_module() -> None:
    event = exec_event() | {"requestObject": {"n": 2**70, "s": "x" * MAX_STORED_EVENT_BYTES}}
    stored = truncate_event(event)
    assert "requestObject" not in stored and stored["annotations"][TRUNCATED_ANNOTATION] == "true"


def test_metadata_too_large_for_the_cap_is_cut_short() -> None:
    """An event within the limits whose metadata alone is over the cap: long strings, long lists everywhere."""
    huge = "\u0001" * 800  # JSON-escaped as 6 bytes each
    many = [huge] * 100
    user = {"username": huge, "uid": huge, "groups": many, "extra": {f"k{i}{huge}": many for i in range(3)}}
    event = exec_event() | {"user": user, "impersonatedUser": user, "sourceIPs": many, "userAgent": huge,
                            "requestURI": huge, "annotations": {f"a{i}{huge}": huge for i in range(100)},
                            "objectRef": dict.fromkeys(("resource", "name", "namespace"), huge),
                            "responseStatus": {"code": 500, "message": huge, "details": {"causes": many}},
                            "unknownField": many}  # fmt: skip
    assert MAX_STORED_EVENT_BYTES < len(orjson.dumps(event)) <= MAX_EVENT_BYTES
    stored = truncate_event(event)
    assert len(orjson.dumps(stored)) <= MAX_STORED_EVENT_BYTES
    assert stored["annotations"][TRUNCATED_ANNOTATION] == "true"
    assert stored["auditID"] == event["auditID"] and stored["responseStatus"] == {"code": 500}
    assert "unknownField" not in stored and len(stored["user"]["groups"]) == 10
    assert validate_event(stored) is None


# --- the alert's own fields -------------------------------------------------------------------------------


def test_a_text_within_the_cap_is_kept_as_it_is() -> None:
    for text in ("", "alice@example.com", "é" * (MAX_ALERT_FIELD_BYTES // 2), "x" * MAX_ALERT_FIELD_BYTES):
        assert cap_text(text) is text


@pytest.mark.parametrize("unit", ["x", "é", "€", "😀"])  # 1 to 4 bytes in UTF-8
def test_a_longer_text_is_cut_at_a_character_and_says_how_many_bytes_went(unit: str) -> None:
    text = unit * 1_000_000
    capped = cap_text(text)
    data = capped.encode()
    assert MAX_ALERT_FIELD_BYTES - 4 < len(data) <= MAX_ALERT_FIELD_BYTES
    kept, mark = capped.split("…<truncated ")
    assert kept == unit * len(kept) and text.startswith(kept)
    assert mark == f"{len(text.encode()) - len(kept.encode())} bytes>"
    assert cap_text(capped) == capped  # a stored alert read back is not cut again
    assert len(cap_text(text, MAX_ALERT_TEXT_BYTES).encode()) <= MAX_ALERT_TEXT_BYTES


def test_details_keep_their_shape_with_strings_and_entries_capped() -> None:
    small = {"output": "ok", "output_fields": {"ka.user.name": "alice"}, "tags": ["k8s"], "n": 3, "none": None}
    assert cap_strings(small) == small and list(cap_strings(small)) == list(small)  # in order: rules rank keys
    big = {"output": "y" * 100_000, "command": ["sh"] * 1000, "fields": {f"f{i}": i for i in range(1000)}}
    capped = cap_strings(big)
    assert len(capped["output"].encode()) <= MAX_ALERT_TEXT_BYTES and capped["output"].endswith(" bytes>")
    assert capped["command"][:MAX_ALERT_ITEMS] == ["sh"] * MAX_ALERT_ITEMS
    assert capped["command"][MAX_ALERT_ITEMS:] == [f"…<truncated {1000 - MAX_ALERT_ITEMS} more>"]
    assert len(capped["fields"]) == MAX_ALERT_ITEMS + 1 and capped["fields"]["…"] == "<truncated 744 more>"
    assert len(big["output"]) == 100_000  # not modified


def test_long_group_keys_are_bounded_and_stay_apart() -> None:
    assert cap_key("alice\x1fpayments\x1f") == "alice\x1fpayments\x1f"
    one, two = "a" * 5000 + "1", "a" * 5000 + "2"
    assert cap_key(one) != cap_key(two) and cap_key(one) == cap_key(one)
    assert len(cap_key("é" * 5000).encode()) <= MAX_GROUP_KEY_BYTES


def alert_by(username: str) -> Alert:
    """An alert whose message, details and group key all carry the username, as rules' do."""
    event = exec_event()
    event["user"] = {"username": username, "groups": [f"g{i}" for i in range(10_000)]}
    event["userAgent"] = "kubectl/" + "k" * 1_000_000
    event["sourceIPs"] = ["10.0.0.1"] * 1000
    return make_alert(rule_id="r", rule_name="R", severity=Severity.HIGH, mitre=(), message=f"exec by {username}",
                      event=AuditEvent(event, "webhook#items[0]"),
                      details={"output": f"user={username}", "key": {"user": username}})  # fmt: skip


def test_an_alert_on_an_event_with_a_huge_username_is_bounded_and_keeps_its_id() -> None:
    alert = alert_by("mallory-" + "m" * 3_000_000)
    assert alert.id == alert_id("r", AuditEvent(exec_event()))  # the id does not depend on the cut values
    assert alert.user.startswith("mallory-mmm") and alert.user.endswith(" bytes>")
    for value in (alert.user, alert.user_agent, *alert.groups, *alert.source_ips):
        assert len(value.encode()) <= MAX_ALERT_FIELD_BYTES
    assert len(alert.groups) == len(alert.source_ips) == MAX_ALERT_ITEMS + 1
    assert len(alert.message.encode()) <= MAX_ALERT_TEXT_BYTES and alert.message.endswith(" bytes>")
    assert len(orjson.dumps(alert.details)) < 3 * MAX_ALERT_TEXT_BYTES
    assert len(alert.group_key.encode()) <= MAX_GROUP_KEY_BYTES
    assert alert_by("mallory-" + "m" * 3_000_001).group_key != alert.group_key  # alike as far as the cut
