"""Webhook bodies for Kafka: `parse_received` judges every body as `parse_body` does (the same events, rejections
and reasons, the same 400s), over the fuzz suite's poison batches and damaged bodies, and keeps each accepted
event's text byte for byte."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.errors import EventError
from detectors.events import MAX_KEPT_REJECTED, AuditEvent, parse_body
from ingest.body import _MARKS, _apiserver_items, _may_be_huge_number, parse_received, record_key
from tests.support.events import exec_event
from tests.support.fuzz import examples
from tests.support.fuzz_events import (
    TEXT_DAMAGE,
    Item,
    batch_item,
    damaged_text,
    event_list_of,
    real_event,
    real_event_count,
)


def outcome(parse: Any, body: bytes) -> Any:
    """What a parser makes of a body: its error, or the events (origin, decoded text, key) and the rejections."""
    try:
        events, rejected = parse(body, origin="webhook")
    except EventError as exc:
        return ("400", str(exc))
    if parse is parse_body:
        accepted = [(e.origin, e.raw, record_key(e)) for e in events]
    else:
        accepted = [(e.origin, orjson.loads(e.text), e.key) for e in events]
    return accepted, rejected.total, [(r.origin, r.reason, r.payload) for r in rejected.kept]


def same_as_parse_body(body: bytes) -> None:
    assert outcome(parse_received, body) == outcome(parse_body, body)


@settings(max_examples=examples(400), deadline=None)
@given(st.lists(batch_item(), min_size=1, max_size=6))
def test_batches_of_valid_and_poison_items_are_judged_as_parse_body_judges_them(items: list[Item]) -> None:
    same_as_parse_body(event_list_of([i.text for i in items]))


@st.composite
def damaged_body(draw: st.DrawFn) -> bytes:
    events = [real_event(draw(st.integers(0, real_event_count() - 1))) for _ in range(draw(st.integers(1, 3)))]
    body = orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events})
    return draw(damaged_text(body, draw(st.sampled_from(TEXT_DAMAGE))))


@settings(max_examples=examples(300), deadline=None)
@given(damaged_body())
def test_damaged_bodies_are_judged_as_parse_body_judges_them(body: bytes) -> None:
    same_as_parse_body(body)


def test_other_shapes_and_envelopes_are_judged_as_parse_body_judges_them() -> None:
    event = orjson.dumps(exec_event())
    for body in [
        b"[" + event + b"]",
        event,
        b'{"kind":"EventList","apiVersion":"v1","items":[' + event + b"]}",
        b'{"kind":"EventList","items":7}',
        b'{"kind":"EventList","items":null}',
        b'{"items":[' + event + b"]}",
        event_list_of([event, b"1e400"]),
        event_list_of([event, b"1" * 120]),
        event_list_of([event, b"[" * 150 + b"]" * 150]),
        event_list_of([event, b"[" * 1030 + b"]" * 1030]),
        event_list_of([event, event[:-1] + b',"requestObject":' + b"[" * 3000 + b"]" * 3000 + b"}", event]),
        event_list_of([event, b'{"requestObject":"x"}', b"0"] * (MAX_KEPT_REJECTED // 2 + 1)),
        event_list_of([event[:-1] + b',"requestObject":' + b"[" * 120 + b"]" * 120 + b"}"]),
    ]:
        same_as_parse_body(body)


def test_an_accepted_event_keeps_its_text_as_received() -> None:
    event = exec_event()
    text = orjson.dumps(event).replace(b'"verb":', b'"verb" :  ').replace(b"exec", b"\\u0065xec", 1)
    assert orjson.loads(text) == event and orjson.dumps(orjson.loads(text)) != text
    events, rejected = parse_received(event_list_of([text, b"0"]), origin="webhook")
    assert [(e.text, e.origin, e.key, e.stage) for e in events] == [
        (text, "webhook#items[0]", record_key(AuditEvent(event)), event["stage"])
    ]
    assert rejected.total == 1


def test_items_are_measured_where_they_lie_whatever_the_spacing_and_copies() -> None:
    """An item's brackets are counted in its own text: with spaces and newlines between items, with copies of an
    item, with an item's text also earlier in the envelope, a too-deep valid event is still refused and the items
    beside it accepted, as parse_body judges them."""
    event = orjson.dumps(exec_event())
    deep = event[:-1] + b',"requestObject":{"a":' + b"[" * 110 + b"]" * 110 + b"}}"
    other = orjson.dumps(exec_event() | {"auditID": "another"})
    assert parse_body(event_list_of([event]))[0] and not parse_body(event_list_of([deep]))[0]
    for body in [
        event_list_of([event, deep, other]),
        b'{"kind":"EventList","items":[\n  ' + event + b" ,\n\t" + deep + b"\r\n,  " + other + b"\n]}",
        event_list_of([other, other, deep, deep, event, event]),
        event_list_of([event, b" " * len(deep) + deep, other]),  # counted elsewhere, it would pass as shallow
        (b'{"kind":"EventList","metadata":{"copy":' + deep + b',"items":[' + event + b']},"items":[' + deep
         + b"," + event + b"]}"),
        b'{"kind":"EventList","items":[' + event + b',"' + b"[" * 200 + b'",' + event + b"," + deep + b"]}",
    ]:  # fmt: skip
        same_as_parse_body(body)
    events, rejected = parse_received(b'{"kind":"EventList","items":[ ' + event + b" ,  " + deep + b"]}", origin="w")
    assert [(e.text, e.origin) for e in events] == [(event, "w#items[0]")]
    assert [(r.origin, r.reason) for r in rejected.kept] == [("w#items[1]", limit_problem_of(deep))]


def limit_problem_of(text: bytes) -> str:
    """The reason parse_body gives for the one item of a body."""
    return parse_body(event_list_of([text]))[1].kept[0].reason


def test_what_msgspec_skips_is_still_searched_for_huge_numbers_and_counted_for_depth() -> None:
    """Only the items with a raw span (and the body around the items) are searched and counted; a number beyond a
    double or a too-deep value is still found where msgspec would skip it unseen: in a field an event does not have
    (at any level), in a raw span's key given twice (the first value is skipped; the second key may be spelled with
    an escape), in a Status's details (the Status given twice), in v1beta1's metadata, in the envelope (an unknown
    field, a first `items` given twice, a copy of the items in metadata)."""
    event = orjson.dumps(exec_event())
    huge, deep = b"[1e400]", b"{" + b'"a":[' * 110 + b"]" * 110 + b"}"
    status = b'"responseStatus":{"metadata":{},"code":500,"status":"Failure","details":'
    bodies = []
    for bad in (huge, deep):
        bodies += [
            event_list_of([event, event[:-1] + b',"unknown":' + bad + b"}"]),
            event_list_of([event[:-1] + b',"requestObject":' + bad + b',"requestObject":{}}', event]),
            event_list_of([event[:-1] + b',"responseObject":' + bad + b',"responseObject":null}']),
            event_list_of([event.replace(b'"user":{', b'"user":{"unknown":' + bad + b",", 1)]),
            event_list_of([event[:-1] + b"," + status + bad + b"}}"]),
            event_list_of([event[:-1] + b"," + status + bad + b'},"responseStatus":{"code":200}}']),
            event_list_of([event[:-1] + b',"requestObject":' + bad + b',"request\\u004fbject":{"unique":1}}']),
            event_list_of([event[:-1] + b',"responseStatus":{"metadata":{"unknown":' + bad + b"},\"code\":200}}"]),
            event_list_of([event.replace(b'"audit.k8s.io/v1"', b'"audit.k8s.io/v1beta1"')[:-1]
                           + b',"metadata":' + bad + b"}"]),
            b'{"kind":"EventList","unknown":' + bad + b',"items":[' + event + b"]}",
            b'{"kind":"EventList","metadata":{"unknown":' + bad + b'},"items":[' + event + b"]}",
            b'{"kind":"EventList","items":[' + bad + b',{}],"items":[' + event + b"," + event + b"]}",
            b'{"kind":"EventList","metadata":{"copy":[' + event + b"," + event + b'],"n":' + bad + b'},"items":['
            + event + b"," + event + b"]}",
        ]  # fmt: skip
    for body in bodies:
        same_as_parse_body(body)
    events, rejected = parse_received(event_list_of([event[:-1] + b',"requestObject":[1e400],"requestObject":{}}']))
    assert not events and rejected.total == 1 and "number is infinity" in rejected.kept[0].reason


def test_a_body_in_the_apiservers_form_is_cut_between_its_events_only_when_every_piece_is_one() -> None:
    """Bodies in the apiserver's form are cut where `},{"kind":"Event",` occurs: a cut inside an item (a list of
    such objects in its request) or in a body that is not JSON is found, and judged as parse_body judges it."""
    event = orjson.dumps(exec_event())
    nested = event[:-1] + b',"requestObject":{"items":[{"kind":"Event","a":1},{"kind":"Event","a":2}]}}'
    for body in [
        event_list_of([event, nested, event]),
        event_list_of([nested]),
        event_list_of([event, b'{"kind":"Event","verb":7}', event]),
        event_list_of([event, event])[:-3] + b"]}",
        event_list_of([event, event]).replace(b'},{"kind"', b'}},{"kind"', 1),
        event_list_of([event, event]).replace(b'},{"kind"', b'},{{"kind"', 1),
        event_list_of([event, event]).replace(b'},{"kind"', b'} ,{"kind"', 1),
        event_list_of([event, event + b" "]),
    ]:
        same_as_parse_body(body)
    events, rejected = parse_received(event_list_of([event, nested, event]), origin="w")
    assert [e.text for e in events] == [event, nested, event] and rejected.total == 0


def test_a_body_in_the_apiservers_form_is_cut_at_each_boundary_between_its_events() -> None:
    """The cut itself (the fast way, with no envelope decode): the items' texts exactly, and more pieces when an
    item holds such bytes (which the decode of each piece then finds)."""
    events = [orjson.dumps(exec_event() | {"auditID": f"id-{n}"}) for n in range(5)]
    nested = events[0][:-1] + b',"requestObject":{"items":[{"kind":"Event","a":1},{"kind":"Event","a":2}]}}'
    assert _apiserver_items(event_list_of(events)) == events
    assert _apiserver_items(event_list_of(events[:1])) == events[:1]
    assert len(_apiserver_items(event_list_of([nested, *events])) or []) == 2 + len(events)  # one cut inside
    assert _apiserver_items(event_list_of(events).replace(b'"metadata":{}', b'"metadata":{"x":1}', 1)) is None


def test_a_number_of_a_hundred_digits_or_more_is_found_in_what_msgspec_skips() -> None:
    """Digits in a row: 310 make a number beyond a double, which orjson refuses and msgspec skips unseen; the search
    flags a run from 100 digits on (below that, a number needs an exponent of 3 digits to be beyond a double)."""
    event = orjson.dumps(exec_event())
    for digits in (b"1" * 310, b"9" * 200 + b".5", b"0." + b"7" * 400):
        same_as_parse_body(event_list_of([event, event[:-1] + b',"requestObject":{"n":' + digits + b"}}"]))
    for run, flagged in [(98, False), (99, False), (100, True), (101, True), (250, True)]:
        for text in (b"1" * run, b"[" + b"5" * run + b"]", b"12,34," + b"8" * run + b",1" + b"3" * 98):
            assert _may_be_huge_number(text, text.translate(_MARKS)) is flagged, (run, text)


def test_an_exponent_of_three_digits_or_more_is_found_whatever_ends_it() -> None:
    """An exponent of 3+ digits is flagged whatever JSON lets end it (a comma, a bracket, a brace, whitespace) and
    however long it runs; hex in a uid (`...e903"`) or a short exponent is not. (The search settles most candidates
    by the mark after the third digit; this holds it to the pattern's answer.)"""
    event = orjson.dumps(exec_event())
    for number in (b"1e400", b"2E+308", b"3.5e1000", b"7e0400"):
        for end in (b",", b"]", b"}", b" ", b"\t", b"\n", b"\r"):
            text = b'{"n":[' + number + end + b"1]}" if end != b"}" else b'{"n":' + number + b"}"
            assert _may_be_huge_number(text, text.translate(_MARKS)), text
        same_as_parse_body(event_list_of([event, event[:-1] + b',"requestObject":{"n":[' + number + b"\n]}}"]))
    for text in (b'{"uid":"3e0-bb03-de6e1282e903"}', b'{"a":"1e400x"}', b'{"n":1e40}', b'{"n":1e99,"m":"e000"}'):
        assert not _may_be_huge_number(text, text.translate(_MARKS)), text
