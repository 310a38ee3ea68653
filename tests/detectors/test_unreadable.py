"""An EventList whose damage (a number beyond a double, invalid UTF-8) is inside items: those are rejected alone."""

from __future__ import annotations

import orjson
import pytest

from detectors.errors import EventError
from detectors.events import parse_body
from detectors.unreadable import read_items
from tests.support.events import event_list, exec_event

EVENT = orjson.dumps(exec_event())


def body_of(*items: bytes, envelope: bytes = b'"kind":"EventList","apiVersion":"audit.k8s.io/v1"') -> bytes:
    return b"{" + envelope + b',"items":[' + b",".join(items) + b"]}"


def test_each_item_orjson_cannot_read_is_rejected_alone_with_its_own_reason() -> None:
    huge = EVENT[:-1] + b',"requestObject":{"replicas":1e400,"n":-2E+308}}'
    not_utf8 = EVENT.replace(b"mallory", b"mall\xffry", 1)
    events, rejected = parse_body(body_of(EVENT, huge, b"-1e999", not_utf8, EVENT), origin="w")
    assert [e.origin for e in events] == ["w#items[0]", "w#items[4]"]
    where = EVENT.index(b"mallory") + 4
    assert [(r.origin, r.reason) for r in rejected.kept] == [
        ("w#items[1]", f"malformed JSON: number is infinity when parsed as double at line 1 column {len(EVENT) + 29} "
         f"(char {len(EVENT) + 28})"),
        ("w#items[2]", "malformed JSON: number is infinity when parsed as double at line 1 column 1 (char 0)"),
        ("w#items[3]", f"invalid UTF-8 at byte {where}"),
    ]  # fmt: skip
    payload = rejected.kept[0].payload
    assert payload["auditID"] == exec_event()["auditID"] and payload["requestObject"] == {
        "replicas": "1e400",
        "n": "-2E+308",
    }
    assert rejected.kept[1].payload == "-1e999"
    assert rejected.kept[2].payload["user"]["username"] == "mall\ufffdry@example.com"


def test_lone_surrogates_and_any_spacing_are_read_too() -> None:
    surrogate = EVENT[:-1] + b',"requestObject":{"a":"\\ud800","b":"x\\udc00"}}'
    body = b' \n{ "kind" : "EventList" ,"metadata":{}, "items" : [ ' + surrogate + b" ,\n" + EVENT + b" ] }\n"
    events, rejected = parse_body(body)
    assert len(events) == 1 and rejected.total == 1
    assert rejected.kept[0].reason.startswith("malformed JSON: no low surrogate in string at line 1 column ")
    assert rejected.kept[0].payload["requestObject"] == {"a": "?", "b": "x?"}


def test_the_last_items_member_counts_as_orjson_reads_it() -> None:
    events, rejected = parse_body(body_of(b"1e400", EVENT)[:-1] + b',"items":[' + EVENT + b"," + EVENT + b"]}")
    assert len(events) == 2 and rejected.total == 0


@pytest.mark.parametrize(
    "body",
    [
        body_of(EVENT, envelope=b'"kind":"EventList","metadata":{"n":1e400}'),  # damage outside the items
        body_of(EVENT, envelope=b'"kind":"EventList","metadata":{"n":1e400},"metadata":{}'),  # (orjson reads all)
        body_of(EVENT, envelope=b'"kind":"EventList","apiVersion":"audit.k8s.io/\xff"'),
        body_of(EVENT, b"1e400", envelope=b'"kind":"EventList","unknown":1'),  # not only an EventList's members
        body_of(EVENT, b"1e400", envelope=b'"kind":"Event"'),
        body_of(EVENT, b"1e400")[:-2],  # cut
        body_of(EVENT, b"1e400") + b"{}",  # more after it
        body_of(EVENT, b"1e400").replace(b"],", b"]", 1),  # no comma between members
        body_of(EVENT, b"1e400 1"),  # no comma between items
        body_of(EVENT, b"1e400").replace(b'"kind":"EventList",', b""),  # not said to be an EventList
        body_of(EVENT, b"1e400", envelope=b'"kind":"EventList","apiVersion":"audit.k8s.io/v1",'),  # trailing comma
        b"[" + EVENT + b",1e400]",  # a JSON array of events, not an EventList
        body_of(EVENT, b"[" * 1100 + b"]" * 1100 + b"]"),  # deeper than Python's json reads, brackets unmatched
        body_of(EVENT, b"[" * 1100 + b"}" * 1100),
        body_of(EVENT, envelope=b'"kind":"EventList","metadata":' + b"[" * 1100 + b"]" * 1100),  # not its items
    ],
)
def test_a_body_damaged_elsewhere_stays_a_400(body: bytes) -> None:
    assert read_items(body) is None
    with pytest.raises(EventError):
        parse_body(body)


def test_a_readable_body_is_not_read_item_by_item() -> None:
    events, rejected = parse_body(event_list([exec_event()]))
    assert len(events) == 1 and rejected.total == 0


def test_an_item_nested_deeper_than_any_reader_goes_is_rejected_alone() -> None:
    """orjson refuses a body with an item nested past 1,024 levels, and Python's json module past its recursion
    limit: the item is cut out by its brackets (strings holding brackets skipped) and rejected for its depth."""
    deep = EVENT[:-1] + b',"requestObject":{"s":"]}[{\\"","v":' + b"[" * 5000 + b'"x"' + b"]" * 5000 + b"}}"
    scalar_deep = b"[" * 3000 + b"]" * 3000
    events, rejected = parse_body(body_of(EVENT, deep, scalar_deep, EVENT), origin="w")
    assert [e.origin for e in events] == ["w#items[0]", "w#items[3]"]
    assert [(r.origin, r.reason, r.payload) for r in rejected.kept] == [
        ("w#items[1]", "nested deeper than 100 levels", None),
        ("w#items[2]", "nested deeper than 100 levels", None),
    ]
