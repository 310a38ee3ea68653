"""JSON documents read as a stream of their records: the same events, rejects and lines as decoding them whole,
bounded memory, and damage that keeps every record before it."""

from __future__ import annotations

import codecs
import errno
import gzip
import io
import subprocess
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest.archives import ArchiveStats, read_archives
from ingest.archives.converters import RecordCollector
from ingest.archives.files import CUT_UTF16, MAX_LINE_BYTES
from ingest.archives.jsonbytes import CHUNK_BYTES
from ingest.archives.stream import DocumentReader
from tests.support.archives import WHOLE, read, subscription_message
from tests.support.cli import clean_env
from tests.support.events import exec_event, lease_event
from tests.support.paths import PYTHON, ROOT

INDENT = orjson.OPT_INDENT_2
AUDIT_STREAM = "kube-apiserver-audit-6f1a2b3c4d5e"
# strings that a scanner counting brackets must read as strings
TRICKY = ['a "quoted" }]', "back\\slash\\", '\\"}],[{"', "{[", "é ü 日本", '\\\\"', "},{"]


def events(count: int, size: int = 0) -> list[dict[str, Any]]:
    """Distinct events, each with tricky strings (and `size` more bytes) in its annotations."""
    base = exec_event()
    out = []
    for n in range(count):
        event = base | {"auditID": f"0e0c6a3c-1b2d-4e5f-8a9b-{n:012d}"}
        event["annotations"] = {f"k{i}": text for i, text in enumerate(TRICKY)} | {"pad": "x" * size}
        out.append(event)
    return out


def cw(event: dict[str, Any] | str, n: int, stream: str = AUDIT_STREAM) -> dict[str, Any]:
    message = event if isinstance(event, str) else orjson.dumps(event).decode()
    return {"logStreamName": stream, "timestamp": 1795165923151 + n, "message": message,
            "ingestionTime": 1795165924000, "eventId": f"3891{n:08d}"}  # fmt: skip


def gke(event: dict[str, Any]) -> dict[str, Any]:
    return {"protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                             "authenticationInfo": {"principalEmail": event["user"]["username"]},
                             "methodName": "io.k8s.core.v1.pods.exec.create",
                             "resourceName": "core/v1/namespaces/shop/pods/web-1/exec", "status": {}},
            "insertId": event["auditID"], "resource": {"type": "k8s_cluster"},
            "timestamp": "2026-11-20T09:12:03.104211337Z", "labels": event["annotations"]}  # fmt: skip


def shapes() -> dict[str, tuple[str, bytes]]:
    """(format, document) of every format with a record array, with good, bad and skipped records."""
    evs = events(700)
    bad = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": 7}
    items: list[Any] = [*evs[:300], bad, "not an event", *evs[300:]]
    cw_events = [cw(e, n) for n, e in enumerate(evs)]
    cw_events[5:5] = [cw("I1120 09:12 authenticator", 9, "authenticator-1a2b"), cw('{"kind": "Event", bro', 8), 42]
    around = {"searchedLogStreams": [{"logStreamName": AUDIT_STREAM, "searchedCompletely": True}] * 300}
    aks = [{"category": "kube-audit", "properties": {"log": orjson.dumps(e).decode()}} for e in evs]
    aks[10:10] = [{"category": "kube-apiserver", "properties": {"log": "I1120 GET /healthz"}}, {"category": 3}]
    hits = [{"_index": "logs", "_id": str(n), "_source": {"event": {"original": orjson.dumps(e).decode()}}}
            for n, e in enumerate(evs)]  # fmt: skip
    hits.append({"_source": {"event": {"original": "{broken"}}})
    return {
        "event-list": ("apiserver", orjson.dumps(
            {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items}, option=INDENT)),
        "event-array": ("apiserver", orjson.dumps(
            [*items[:50], {"kind": "EventList", "items": evs[:3]}, *items[50:]], option=INDENT)),
        "compact-event-list": ("apiserver", b"{\n" + orjson.dumps({"kind": "EventList", "items": items})[1:]),
        "cloudwatch": ("cloudwatch", orjson.dumps(
            {"nextToken": "Bxkq6kVGFtq2y_MoigeqscPOdhXVbhiVtLoAmXb5jCrI7sgA", "events": cw_events} | around,
            option=INDENT)),
        "aks": ("aks", orjson.dumps({"records": aks}, option=INDENT)),
        "elastic": ("elastic", orjson.dumps(
            {"took": 5, "timed_out": False, "_shards": {"total": 1, "failed": 0},
             "hits": {"total": {"value": len(hits)}, "max_score": 1.0, "hits": hits}}, option=INDENT)),
        "gke": ("gke", orjson.dumps({"entries": [gke(e) for e in evs] + [{"insertId": "x"}],
                                     "nextPageToken": "x"}, option=INDENT)),
        "firehose": ("cloudwatch-subscription", b"\n" + b"".join(
            gzip.decompress(subscription_message([orjson.dumps(e).decode()])) for e in evs[:200])),
    }  # fmt: skip


@pytest.mark.parametrize("shape", list(shapes()))
def test_a_document_read_as_a_stream_reads_as_it_does_whole(tmp_path: Path, shape: str) -> None:
    fmt, data = shapes()[shape]
    path = tmp_path / "document.json"
    path.write_bytes(data)
    streamed, rejected, stats = read(path)
    whole, whole_rejected, whole_stats = read(path, whole_document_bytes=WHOLE)
    assert stats.formats == whole_stats.formats == {fmt: 1}
    assert len(streamed) >= 200 and streamed == whole
    assert rejected == whole_rejected and len(rejected) == stats.rejected == whole_stats.rejected
    assert (stats.lines, stats.skipped) == (whole_stats.lines, whole_stats.skipped)
    if fmt != "cloudwatch-subscription":  # whole: one batch of all; as a stream: batches of a few hundred records
        batches = list(read_archives([str(path)], ArchiveStats()))
        assert len(batches) > 1 and sum(len(b) for b, _ in batches) == len(streamed)


def test_records_of_a_gzip_document_with_a_bom_read_as_a_stream(tmp_path: Path) -> None:
    fmt, data = shapes()["cloudwatch"]
    (tmp_path / "gzip").mkdir()
    (tmp_path / "plain").mkdir()
    path = tmp_path / "gzip" / "filter-log-events.json"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf" + data))
    plain = tmp_path / "plain" / "filter-log-events.json"
    plain.write_bytes(data)
    streamed, whole = read(path), read(plain, whole_document_bytes=WHOLE)
    assert len(streamed[0]) == 700 and repr(streamed[:2]).replace("/gzip/", "/plain/") == repr(whole[:2])


def damaged(tmp_path: Path, data: bytes, name: str = "damaged.json") -> tuple[list[str], list[tuple[str, str]]]:
    path = tmp_path / name
    path.write_bytes(data)
    evs, rejected, _ = read(path)
    return [origin for origin, _ in evs], [(origin.removeprefix(f"{path}:"), reason) for origin, reason, _ in rejected]


def test_a_cut_document_keeps_every_record_before_the_cut(tmp_path: Path) -> None:
    data = orjson.dumps({"kind": "EventList", "items": events(50)}, option=INDENT)
    cut = data.rfind(b'"auditID"')
    origins, rejected = damaged(tmp_path, data[:cut])
    assert len(origins) == 49 and origins[-1].endswith(":1#items[48]")
    record_line = data[: data.rfind(b"\n    {", 0, cut)].count(b"\n") + 2  # the line of the last record's `{`
    assert rejected == [(str(record_line), "malformed JSON: the file ends inside the document (cut short?);"
                                           " the rest of the file is not read")]  # fmt: skip

    gz = gzip.compress(data)
    origins, rejected = damaged(tmp_path, gz[: len(gz) * 2 // 3], "cut.json.gz")
    assert 0 < len(origins) < 50 and len(rejected) == 1 and rejected[0][1].startswith("cannot read: ")


def record_document(shape: str, count: int) -> tuple[bytes, list[int]]:
    """A CloudWatch `filter-log-events` output or an EventList of `count` events; where each record's text ends."""
    if shape == "cloudwatch":
        head = b'{\n  "nextToken": "Bxkq6kVGFtq2y",\n  "events": [\n'
        items: list[Any] = [cw(e, n) for n, e in enumerate(events(count))]
        tail = b'\n  ],\n  "searchedLogStreams": []\n}\n'
    else:
        head = b'{\n  "kind": "EventList",\n  "apiVersion": "audit.k8s.io/v1",\n  "metadata": {},\n  "items": [\n'
        items, tail = events(count), b"\n  ]\n}\n"
    data, ends = bytearray(head), []
    for n, item in enumerate(items):
        data += b",\n" if n else b""
        data += orjson.dumps(item, option=INDENT)
        ends.append(len(data))
    return bytes(data + tail), ends


def gzip_cut(data: bytes) -> bytes:
    """`data` gzipped and cut right after it: what inflates is `data`, and then the stream is cut short."""
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", compresslevel=1, mtime=0) as out:
        out.write(data)
        out.flush()  # Z_SYNC_FLUSH: every byte written so far inflates from what is in `packed`
        return packed.getvalue()


def read_in_order(path: Path) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
    """The events of a file, and its rejects, which must all come after them."""
    evs: list[tuple[str, Any]] = []
    rejected: list[tuple[str, str]] = []
    for batch, rejects in read_archives([str(path)], ArchiveStats()):
        assert not (batch and rejected), "events after a reject"
        evs.extend((e.origin.removeprefix(str(path)), e.raw) for e in batch)
        rejected.extend((r.origin.removeprefix(str(path)), r.reason) for r in rejects.kept)
    return evs, rejected


def cuts(ends: list[int]) -> dict[str, int]:
    """Where to cut a document whose records end at `ends`: how many bytes of it are kept."""
    middle = (ends[1199] + ends[1200]) // 2
    return {"after a record's brace": ends[799], "after the comma after it": ends[799] + 1,
            "in a record": middle, "after the last record": ends[-1], "at a read's end": CHUNK_BYTES}  # fmt: skip


def cut_line(data: bytes, ends: list[int], at: int) -> int:
    """The line a cut after `at` bytes is reported at: where the record it cuts starts (its `{` follows the `,\n`
    after the one before), or, between records, the line of the last byte before the cut that is not whitespace."""
    after = [end for end in ends if end > at]
    start = ends[-len(after) - 1] + 2 if after and len(after) < len(ends) else at
    if start < at:
        return data[:start].count(b"\n") + 1
    return data[:at].rstrip().count(b"\n") + 1


@pytest.mark.parametrize("shape", ["cloudwatch", "event-list"])
def test_a_gzip_document_cut_short_keeps_every_record_read_before_the_cut(tmp_path: Path, shape: str) -> None:
    """Every record wholly inflated before the cut is read, those the reader had read ahead of where it was
    too, and then the cut is one reject: at the line where the record it cuts starts."""
    data, ends = record_document(shape, 2000)
    path = tmp_path / "document.json"
    path.write_bytes(data)
    uncut, rejected = read_in_order(path)
    assert len(uncut) == 2000 and not rejected
    reason = "cannot read: Compressed file ended before the end-of-stream marker was reached"
    gz = gzip.compress(data)
    anywhere = len(zlib.decompressobj(wbits=31).decompress(gz[: len(gz) * 2 // 3]))  # what inflates from the cut
    for name, (at, packed) in {
        **{name: (at, gzip_cut(data[:at])) for name, at in cuts(ends).items()},
        "anywhere": (anywhere, gz[: len(gz) * 2 // 3]),
    }.items():
        path = tmp_path / "cut.json.gz"
        path.write_bytes(packed)
        evs, rejected = read_in_order(path)
        before = sum(end <= at for end in ends)
        assert 0 < before and evs == uncut[:before], name
        assert rejected == [(f":{cut_line(data, ends, at)}", reason)], name


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_utf16_document_cut_to_an_odd_byte_keeps_every_record_before_the_cut(tmp_path: Path, gzipped: bool) -> None:
    data, ends = record_document("cloudwatch", 2000)
    path = tmp_path / "document.json"
    path.write_bytes(data)
    uncut, _ = read_in_order(path)
    for name, at in cuts(ends).items():
        while data[at] & 0xC0 == 0x80:  # within a character: cut before it
            at -= 1
        text = data[:at].decode()
        cut = codecs.BOM_UTF16_LE + text.encode("utf-16-le") + data[at : at + 1]  # and half of the next character
        path = tmp_path / "cut.json"
        path.write_bytes(gzip.compress(cut) if gzipped else cut)
        evs, rejected = read_in_order(path)
        before = sum(end <= at for end in ends)
        assert 0 < before and evs == uncut[:before], name
        assert rejected == [(f":{cut_line(data, ends, at)}", f"cannot read: {CUT_UTF16}")], name


class _FailingDisk(io.RawIOBase):
    """A file whose read fails (EIO) once its bytes are read."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._data:
            raise OSError(errno.EIO, "Input/output error")
        n = min(len(buffer), len(self._data))
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


@pytest.mark.parametrize("cut", ["after a record's brace", "in a record", "at a read's end"])
def test_a_read_error_in_a_plain_document_comes_after_every_record_before_it(cut: str) -> None:
    """At a read's end, the error comes at the start of the next read, not after bytes it hands on."""
    data, ends = record_document("event-list", 2000)
    at = cuts(ends)[cut]
    uncut, _ = reader(data, "apiserver", MAX_LINE_BYTES)
    stream = io.BufferedReader(_FailingDisk(data[:at]))
    document = DocumentReader(stream, b"", "doc", "apiserver", MAX_LINE_BYTES)
    out = RecordCollector()
    with pytest.raises(OSError, match="Input/output error"):
        for convert, item, origin, n in document.records():
            convert(item, origin, n, out)
    before = sum(end <= at for end in ends)
    assert 0 < before and [(e.origin, e.raw) for e in out.events] == [(e.origin, e.raw) for e in uncut.events[:before]]


@pytest.mark.parametrize(
    ("junk", "reason"),
    [
        (b" junk ", "expected ',' or ']' after a record"),
        (b",,", "expected a JSON value"),
        (b"}", "expected ',' or ']' after a record"),
        (b"]]]", "expected ',' or '}' after a member"),
    ],
)
def test_junk_between_records_is_one_reject_after_the_records_before_it(
    tmp_path: Path, junk: bytes, reason: str
) -> None:
    records = [orjson.dumps(cw(e, n), option=INDENT) for n, e in enumerate(events(20))]
    data = b'{\n"events": [\n' + b",\n".join(records[:12]) + junk + b",\n" + b",\n".join(records[12:]) + b"\n]}\n"
    origins, rejected = damaged(tmp_path, data)
    assert origins == [f"{tmp_path / 'damaged.json'}:1#{n}" for n in range(12)]
    assert [r for _, r in rejected] == [f"malformed JSON: {reason}; the rest of the file is not read"]
    assert rejected[0][0] == str(data[: data.find(records[11]) + len(records[11])].count(b"\n") + 1)


def test_a_record_with_unbalanced_brackets_or_nested_too_deep_is_rejected_alone(tmp_path: Path) -> None:
    good = [orjson.dumps(e) for e in events(6)]
    deep = b"[" * 3000 + b"]" * 3000
    bad = b'{"kind": "Event", "auditID": "x", "user": {"username": "a"]}'  # `]` for `}`: its end is still found
    data = b"[\n" + b",\n".join([good[0], good[1], deep, good[2], bad, good[3], b'{"a": [1, 2}', good[4]]) + b"\n]"
    origins, rejected = damaged(tmp_path, data)
    assert [o.rpartition("#")[2] for o in origins] == ["[0]", "[1]", "[3]", "[5]"]
    assert [(o, r.split(":")[0]) for o, r in rejected] == [
        ("1#[2]", "nested deeper than 100 levels"), ("1#[4]", "malformed JSON"),
        ("1#[6]", "malformed JSON"), ("10", "malformed JSON")]  # fmt: skip
    assert rejected[-1][1].endswith("ends inside the document (cut short?); the rest of the file is not read")
    # an opening bracket too many: the rest of the file is one record, up to the array's `]`, and then no `]`
    origins, rejected = damaged(tmp_path, b"[\n" + good[0] + b",\n{" + b",\n".join(good[1:]) + b"\n]")
    assert len(origins) == 1 and [r for _, r in rejected] == [
        "malformed JSON: unexpected character, expected a string key (char 1)",
        "malformed JSON: the file ends inside the document (cut short?); the rest of the file is not read",
    ]


def reader(data: bytes, fmt: str, limit: int) -> tuple[RecordCollector, DocumentReader]:
    stream = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
    document = DocumentReader(stream, b"", "doc", fmt, limit)
    out = RecordCollector()
    for convert, item, origin, n in document.records():
        convert(item, origin, n, out)
    return out, document


def test_a_record_over_the_limit_is_rejected_and_the_rest_read() -> None:
    evs = events(5)
    big = cw(evs[2] | {"requestObject": {"data": "x" * 5000}}, 2)
    records = [cw(evs[0], 0), cw(evs[1], 1), big, cw(evs[3], 3)]
    out, document = reader(orjson.dumps({"events": records}, option=INDENT), "cloudwatch", 4096)
    assert [e.origin for e in out.events] == ["doc:1#0", "doc:1#1", "doc:1#3"]
    assert [(r.origin, r.reason) for r in out.rejected.kept] == [("doc:1#2", "a record longer than 4096 bytes")]
    assert len(out.rejected.kept[0].payload) <= 4096


def test_members_around_the_array_are_read_past_whatever_their_size() -> None:
    evs = events(3)
    streams = [{"logStreamName": f"s{n}", "searchedCompletely": True} for n in range(5000)]  # 250 kB
    doc = {"searchedLogStreams": streams, "events": [cw(e, n) for n, e in enumerate(evs)], "after": streams}
    out, document = reader(orjson.dumps(doc, option=INDENT), "cloudwatch", 4096)
    assert [e.audit_id for e in out.events] == [e["auditID"] for e in evs] and not out.rejected
    assert document.lines == orjson.dumps(doc, option=INDENT).count(b"\n") + 1
    # no record array: within the limit it is converted whole, beyond it rejected
    out, _ = reader(orjson.dumps({"message": orjson.dumps(evs[0]).decode()}, option=INDENT), "cloudwatch", 4096)
    assert len(out.events) == 1
    out, _ = reader(orjson.dumps({"streams": streams}), "cloudwatch", 4096)
    assert [r.reason for r in out.rejected.kept] == [
        "a JSON document longer than 4096 bytes without a record array (.events[])"
    ]


def test_an_event_list_of_another_api_version_is_rejected_as_when_read_whole(tmp_path: Path) -> None:
    data = orjson.dumps({"kind": "EventList", "apiVersion": "v2", "items": events(3)}, option=INDENT)
    origins, rejected = damaged(tmp_path, data)
    whole = read(tmp_path / "damaged.json", whole_document_bytes=WHOLE)
    assert origins == [] and [(o, r) for o, r, _ in whole[1]] == [(str(tmp_path / "damaged.json:1"), rejected[0][1])]
    assert [r for _, r in rejected] == ["apiVersion 'v2' is not an audit API version (expected audit.k8s.io/v1)"]


def write_cloudwatch_gzip(path: Path, minimum: int) -> int:
    """A gzipped `aws logs filter-log-events` output over `minimum` bytes inflated, written a record at a time;
    its count of audit events."""
    base = lease_event()
    base["requestObject"] = {"kind": "Lease", "data": "x" * 9000}
    size, count = 0, 0
    with gzip.open(path, "wb", compresslevel=1) as out:
        size += out.write(b'{\n    "nextToken": "Bxkq6kVGFtq2y",\n    "events": [\n')
        while size < minimum:
            event = base | {"auditID": f"0e0c6a3c-1b2d-4e5f-8a9b-{count:012d}"}
            record = orjson.dumps(cw(event, count), option=INDENT).replace(b"\n", b"\n        ")
            size += out.write((b",\n        " if count else b"        ") + record)
            count += 1
        size += out.write(b'\n    ],\n    "searchedLogStreams": [{"logStreamName": "' + AUDIT_STREAM.encode()
                          + b'", "searchedCompletely": true}]\n}\n')  # fmt: skip
    assert size > minimum
    return count


def test_replay_reads_a_document_over_128_mib_in_a_fraction_of_its_size(tmp_path: Path) -> None:
    path = tmp_path / "filter-log-events.json.gz"
    size = 256 * 1024 * 1024  # the replay itself takes about 90 MiB
    count = write_cloudwatch_gzip(path, size)
    # the peak resident memory of the replay, read by a parent of its own (its only child)
    peak = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]);"
            " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")  # fmt: skip
    done = subprocess.run(
        [PYTHON, "-c", peak, PYTHON, "-m", "auditwatch.cli", "replay", str(path), "--output", "/dev/null"],
        capture_output=True, timeout=600, cwd=ROOT, env=clean_env(), check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert f"replayed {count:,} events from 1 file(s)" in done.stderr.decode()
    assert "rejected: 0\n" in done.stderr.decode()
    peak_bytes = int(done.stdout.split()[-1]) * 1024  # ru_maxrss is in KiB on Linux
    assert peak_bytes < size // 2, f"peak RSS {peak_bytes >> 20} MiB for a document of {size >> 20} MiB"
