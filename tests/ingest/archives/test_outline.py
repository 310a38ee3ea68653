"""A document's members other than its records judged where they stand, and a name twice on its record array's path:
the same events and rejects whether the document is read as a stream or decoded whole."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest.archives.converters import RecordCollector
from ingest.archives.stream import DocumentReader
from tests.support.archives import WHOLE, read
from tests.support.cli import RunCli
from tests.support.events import lease_event

V1 = "audit.k8s.io/v1"
LATE = ": said by a member after the record array (.items[]), whose records were read before it"
NOT_AN_EVENT_LIST = "kind 'Pod' is not Event or EventList"
TWICE = "a second member 'items' in one object (a duplicate name): not read, the first is .items[]"


def evs(count: int, first: int = 0) -> list[dict[str, Any]]:
    return [lease_event() | {"auditID": f"id-{n}"} for n in range(first, first + count)]


def members(*pairs: tuple[str, Any]) -> bytes:
    """An object of these members in this order, pretty-printed (a name may come twice)."""
    return b"{\n" + b",\n".join(orjson.dumps(n) + b": " + orjson.dumps(v, option=orjson.OPT_INDENT_2) for n, v in pairs) + b"\n}"  # fmt: skip


def both(tmp_path: Path, data: bytes) -> tuple[list[str], list[tuple[str, str]]]:
    """The events' origins and the rejects of a file, the same read as a stream and decoded whole (file:
    `tmp_path/doc.json`, left out of the origins)."""
    path = tmp_path / "doc.json"
    path.write_bytes(data)
    results = []
    for options in ({}, {"whole_document_bytes": WHOLE}):
        events, rejected, _ = read(path, **options)
        results.append(
            ([o.removeprefix(str(path)) for o, _ in events], [(o.removeprefix(str(path)), r) for o, r, _ in rejected])
        )
    streamed, whole = results
    assert streamed == whole
    return streamed


@pytest.mark.parametrize(
    ("pairs", "count", "rejected"),
    [
        ([("kind", "Pod"), ("apiVersion", V1), ("items", evs(3))], 0, [(":1", NOT_AN_EVENT_LIST)]),
        ([("apiVersion", V1), ("items", evs(3)), ("kind", "Pod")], 3, [(":1", NOT_AN_EVENT_LIST + LATE)]),
        (
            [("kind", "EventList"), ("items", evs(3)), ("apiVersion", "v2")],
            3,
            [(":1", "apiVersion 'v2' is not an audit API version (expected audit.k8s.io/v1)" + LATE)],
        ),
        ([("apiVersion", V1), ("items", evs(3)), ("kind", "EventList"), ("metadata", {})], 3, []),  # sorted keys
    ],
    ids=["kind before items", "kind after items", "apiVersion after items", "sorted keys"],
)
def test_members_around_the_records_are_judged_alike_read_as_a_stream_or_whole(
    tmp_path: Path, pairs: list[tuple[str, Any]], count: int, rejected: list[tuple[str, str]]
) -> None:
    """Before the records, a member that makes the document no EventList rejects it whole; after them, the records
    were read (and handed on) before it came: they are kept, and it is a reject of the document."""
    origins, rejects = both(tmp_path, members(*pairs))
    assert origins == [f":1#items[{n}]" for n in range(count)]
    assert rejects == rejected


def test_documents_one_after_another_are_each_judged_where_their_members_stand(tmp_path: Path) -> None:
    """Each document is read as the first is, however many came before it (none decoded whole on a guess)."""
    first = members(("kind", "EventList"), ("items", evs(3)))
    late = members(("items", evs(3, 3)), ("kind", "Pod"))
    twice = members(("kind", "EventList"), ("items", evs(3, 6)), ("items", evs(2, 9)))
    # after the first two, each starts as the one before: a reader guessing where one ends would find it
    data = b"\n".join([first, late, first.replace(b"id-", b"x-"), twice, first.replace(b"id-", b"y-")])
    origins, rejects = both(tmp_path, data)
    starts = [n for n, line in enumerate(data.split(b"\n"), start=1) if line == b"{"]  # where each document starts
    assert origins == [f":{start}#items[{n}]" for start in starts for n in range(3)]
    second = line_of(data, b'"items"', 5)
    assert rejects == [(f":{starts[1]}", NOT_AN_EVENT_LIST + LATE), (f":{second}", TWICE)]


def test_a_late_member_makes_convert_report_a_reject_with_the_status_of_any_other(
    tmp_path: Path, run_cli: RunCli
) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(members(("items", evs(3)), ("kind", "Pod")))
    run = run_cli("convert", str(path))
    assert run.code == 0 and len(run.out.splitlines()) == 3
    assert f"  {path}:1: {NOT_AN_EVENT_LIST}{LATE}\n" in run.err


def line_of(data: bytes, text: bytes, nth: int = 2) -> int:
    """The line of the `nth` occurrence of `text`."""
    at = -1
    for _ in range(nth):
        at = data.index(text, at + 1)
    return data[:at].count(b"\n") + 1


def test_a_second_record_array_of_the_same_name_is_a_reject_read_as_a_stream_or_whole(tmp_path: Path) -> None:
    """orjson keeps the last of two `items`, a stream has read the first when it meets the second: the first is
    read, in both, and the second is a reject at its line."""
    data = members(("kind", "EventList"), ("items", evs(2)), ("metadata", {}), ("items", evs(3, 2)))
    origins, rejects = both(tmp_path, data)
    assert origins == [":1#items[0]", ":1#items[1]"]
    second = line_of(data, b'"items"')
    assert rejects == [(f":{second}", TWICE)]
    # nested: Elastic's .hits.hits[]
    hits = [{"_source": {"event": {"original": orjson.dumps(e).decode()}}} for e in evs(3)]
    inner = members(("total", {"value": 3}), ("hits", hits[:1]), ("hits", hits[1:])).decode()
    data = b'{\n"took": 5,\n"hits": ' + inner.encode() + b',\n"timed_out": false\n}'
    origins, rejects = both(tmp_path, data)
    assert origins == [":1#0"]
    second = line_of(data, b'"hits"', 3)  # the outer `hits`, then the inner ones
    assert rejects == [(f":{second}", TWICE.replace("'items'", "'hits'").replace(".items[]", ".hits.hits[]"))]


def test_a_name_twice_around_the_records_is_judged_as_a_stream_reads_it(tmp_path: Path) -> None:
    # `kind` before and after the records: the last one is the document's (as orjson says), but too late
    origins, rejects = both(tmp_path, members(("kind", "EventList"), ("items", evs(3)), ("kind", "Pod")))
    assert len(origins) == 3 and rejects == [(":1", NOT_AN_EVENT_LIST + LATE)]
    # `items` twice, the first no array: the second is the record array
    origins, rejects = both(tmp_path, members(("items", "none"), ("kind", "EventList"), ("items", evs(3))))
    assert origins == [f":1#items[{n}]" for n in range(3)] and rejects == []


def streamed(data: bytes, limit: int) -> RecordCollector:
    document = DocumentReader(io.BufferedReader(io.BytesIO(data)), b"", "doc", "apiserver", limit)  # type: ignore[arg-type]
    out = RecordCollector()
    for convert, item, origin, n in document.records():
        convert(item, origin, n, out)
    return out


def test_members_after_the_records_are_judged_within_the_limit() -> None:
    """What follows the records is kept up to the limit: a member longer is left out, the others are judged."""
    out = streamed(members(("items", evs(3)), ("annotation", "x" * 5000), ("kind", "Pod")), limit=4096)
    assert len(out.events) == 3
    assert [(r.origin, r.reason) for r in out.rejected.kept] == [("doc:1", NOT_AN_EVENT_LIST + LATE)]
    assert out.rejected.kept[0].payload == {"items": [], "kind": "Pod"}
    # one that is not JSON is damage after the records
    out = streamed(b'{"items": ' + orjson.dumps(evs(3)) + b',\n"x": [1,,2]\n}\n', limit=4096)
    assert len(out.events) == 3
    assert [(r.origin, r.reason) for r in out.rejected.kept] == [
        (
            "doc:3",
            "malformed JSON: a member after the record array (.items[]) is not JSON; the rest of the file is not read",
        )
    ]
