"""Record readers: the lines or JSON documents of one archive file -> AuditEvents and Rejected items.

Lines are read at most MAX_LINE_BYTES at a time (a longer one is a reject, skipped without being held);
a JSON document is decoded whole up to `whole_bytes` (after gzip), a larger one read as a stream of its records
(`stream`), each at most MAX_LINE_BYTES, with the same events and rejects (`outline`; one with a name twice on
its record array's path is read as a stream either way); the rejects of a batch are capped (`Rejections`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from detectors.errors import EventError
from detectors.events import AuditEvent, Rejected, Rejections, json_problem, split_document, validate_event
from detectors.limits import (
    MAX_EVENT_BYTES,
    MAX_EVENT_DEPTH,
    SHALLOW_COUNT_BYTES,
    cut_deep,
    limit_problem,
    loads_bounded,
)
from detectors.validation import valid_route_key
from ingest.archives.converters import (
    AUDIT_STREAM_PREFIX,
    CONVERTERS,
    PAYLOAD_CAP,
    RecordCollector,
    malformed_json,
    too_deep,
)
from ingest.archives.files import (
    MAX_LINE_BYTES,
    MAX_SKIPPED_BYTES,
    UNREADABLE,
    is_overlong,
    line_reader,
    lines_of,
    skip_line,
)
from ingest.archives.normalise import micro_time
from ingest.archives.outline import NamesTwice, convert_document, twice_on_path
from ingest.archives.stream import DocumentReader

Batch = tuple[list[AuditEvent], Rejections]
LineReader = Callable[[bytes, str, RecordCollector], None]
# apiserver lines are handed on in batches of up to this many lines or bytes (the per-batch work of the
# reader and of replay is then paid once per batch, not per line)
BATCH_LINES = 16
BATCH_BYTES = 4 * 1024 * 1024
BATCH_RECORDS = 256  # records of a document read as a stream handed on together
_ALL_BUT_BRACKETS = bytes(sorted(set(range(256)) - set(b"{[\n")))  # deleted: what is left are `{`, `[` and newlines


@dataclass
class Counters:
    """What a read saw besides events and rejects: lines, records skipped on purpose, duplicates dropped."""

    lines: int = 0
    skipped: int = 0
    duplicates: int = 0
    failed_line: int = 0  # the line a failed read is reported at, when not the one after `lines` (`stop_line`)
    copy_keys: list[str] | None = None  # the last batch's events' `copy_key`s, when its reader found them on the way


def malformed_line(exc: orjson.JSONDecodeError, line: bytes) -> str:
    """The reason given for a line that is not JSON (the one message for every line format)."""
    reason = malformed_json(exc, line)
    if not line.endswith(b"\n") and too_deep(exc) is None:
        reason += "; the last line looks truncated"
    return reason


def overlong(origin: str, line: bytes, stream: io.BufferedReader) -> tuple[Rejected, bool]:
    """The reject of a line over MAX_LINE_BYTES (its start kept), after skipping the rest of it; and whether the
    file can be read on (False: no end of line within MAX_SKIPPED_BYTES)."""
    reason = f"line longer than {MAX_LINE_BYTES} bytes"
    more = skip_line(stream)
    if not more:
        reason += f", and no end of line in the next {MAX_SKIPPED_BYTES} bytes: the rest of the file is not read"
    return Rejected(origin, reason, line[:PAYLOAD_CAP].decode("utf-8", "replace")), more


# --- apiserver JSON lines: the fast path ------------------------------------------------------------------


def _apiserver_line(
    line: bytes, doc: Any, shallow: bool, origin: str, events: list[AuditEvent], rejected: Rejections
) -> None:
    """One decoded line of the log backend -> events and rejected items (the general path of `_apiserver_lines`)."""
    small = len(line) <= MAX_EVENT_BYTES
    if type(doc) is dict and doc.get("kind") == "Event":
        invalid = validate_event(doc)
        if invalid is None and not (shallow and small):
            invalid = limit_problem(doc, shallow=shallow, small=small)
        if invalid is None:
            events.append(AuditEvent(doc, origin))
        elif rejected.full:
            rejected.count()
        else:
            rejected.add(Rejected(origin, invalid, cut_deep(doc)))
        return
    try:
        line_events, line_rejected = split_document(doc, origin=origin, shallow=shallow, small=small)
    except EventError as exc:  # the whole line is not audit data
        line_events, line_rejected = [], Rejections.of(Rejected(origin, str(exc), cut_deep(doc)))
    events.extend(line_events)
    rejected.merge(line_rejected)


def _apiserver_lines(stream: io.BufferedReader, label: str, counters: Counters) -> Iterator[Batch]:
    """Batches of lines; what a batch holds when reading fails is handed on before the error.

    A batch's lines are read first, then decoded together (`_decoded`). A batch ends early at an over-long
    line, so that the numbers of its lines follow each other. Each batch is handed on with `counters.copy_keys`
    set to its events' copy keys, when `_decoded` found them all on the way (else None).
    """
    read_line = line_reader(stream)
    slots = range(BATCH_LINES)
    more = True
    while more:
        first = counters.lines + 1  # the number of the batch's first line
        lines: list[bytes] = []
        add = lines.append
        size = 0
        too_long: Rejected | None = None
        long_line = b""
        try:
            # the common line takes a read, a test, an append and a sum here (a line costs a few microseconds)
            for _ in slots:
                line = read_line()
                if not line:
                    more = False
                    break
                add(line)
                size += len(line)
                if size >= BATCH_BYTES:  # as any line over MAX_LINE_BYTES (> BATCH_BYTES) makes it
                    if is_overlong(line):
                        long_line = lines.pop()
                    break
            counters.lines = first - 1 + len(lines) + bool(long_line)
            if long_line:
                too_long, more = overlong(f"{label}:{counters.lines}", long_line, stream)
                long_line = b""
        except UNREADABLE:
            counters.lines = first - 1 + len(lines) + bool(long_line)
            events, rejected, keys = _decoded(lines, label, first)
            if events or rejected:
                counters.copy_keys = keys
                yield events, rejected
            raise
        events, rejected, keys = _decoded(lines, label, first)
        if too_long is not None:
            rejected.add(too_long)
        if events or rejected:
            counters.copy_keys = keys
            yield events, rejected


def _decoded(lines: list[bytes], label: str, first: int) -> tuple[list[AuditEvent], Rejections, list[str] | None]:
    """The events and rejected items of consecutive lines, numbered from `first`; and the events' copy keys
    (`copy_key`) when every one took the fast path (None: the reader computes them).

    `loads_bounded`'s first test, a line with no more brackets than MAX_EVENT_DEPTH is shallow, is found for all
    the lines at once: one pass keeps only their brackets and newlines, half the cost of counting per line. The
    common line, one valid Event that the test finds shallow, takes a fast path written out in this loop (a line
    costs a few microseconds, so calls count); any other goes the general way.
    """
    events: list[AuditEvent] = []
    keys: list[str] | None = []
    rejected = Rejections()
    # each line holds one newline, at its end (the stream's last line may have none): part i is line i's, and
    # after the last newline comes an empty part, which no line takes
    brackets = b"".join(lines).translate(None, _ALL_BUT_BRACKETS).split(b"\n")
    loads, route_of, event, add = orjson.loads, valid_route_key, AuditEvent, events.append
    for lineno, line, marks in zip(range(first, first + len(lines)), lines, brackets, strict=False):
        try:
            # loads_bounded's first test, and then its answer: shallow, and under 64 KiB so not too large
            if len(line) < SHALLOW_COUNT_BYTES and len(marks) <= MAX_EVENT_DEPTH:
                doc = loads(line)
                if route := route_of(doc):  # a dict whose kind is Event, valid
                    add(event(doc, f"{label}:{lineno}", {}, route))
                    if keys is not None:
                        # copy_key's string: the fast path found auditID, stage and stageTimestamp non-empty strings
                        keys.append(f"{doc['auditID']}\x1f{route[0]}\x1f{doc['stageTimestamp']}")
                    continue
                shallow = True
            else:
                doc, shallow = loads_bounded(line)
        except orjson.JSONDecodeError as exc:
            if line.isspace():  # a blank line is no record (and never JSON)
                continue
            if rejected.full:
                rejected.count()
            else:
                reason = malformed_line(exc, line)
                rejected.add(Rejected(f"{label}:{lineno}", reason, line[:PAYLOAD_CAP].decode("utf-8", "replace")))
        else:
            before = len(events)
            _apiserver_line(line, doc, shallow, f"{label}:{lineno}", events, rejected)
            if before != len(events):
                keys = None
    return events, rejected, keys


# --- line formats -----------------------------------------------------------------------------------------


def _s3_line(line: bytes, origin: str, out: RecordCollector) -> None:
    text = line.decode("utf-8", "replace").rstrip("\r\n")
    stamp, sep, message = text.partition(" ")
    if not sep or micro_time(stamp) is None:
        out.reject(origin, "not a CloudWatch export line '<ISO timestamp> <message>'", text)
        return
    out.message(origin, message, "CloudWatch message")


def _json_line(fmt: str) -> LineReader:
    convert = CONVERTERS.get(fmt, CONVERTERS["apiserver"])
    base64_records = fmt == "cloudwatch-subscription"

    def read(line: bytes, origin: str, out: RecordCollector) -> None:
        stripped = line.strip()
        if base64_records and stripped[:1] not in (b"{", b"["):
            convert(stripped.decode("ascii", "replace"), origin, out)  # a base64 Kinesis record
            return
        try:
            doc = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            out.reject(origin, malformed_line(exc, line), line)
            return
        convert(doc, origin, out)

    return read


def _batch(out: RecordCollector, counters: Counters) -> Batch:
    counters.skipped += out.skipped
    return out.events, out.rejected


def _documents(data: bytes, fmt: str) -> Iterator[tuple[int, Any, str | None, bool]]:
    """One JSON document, or several concatenated (`}{`, as Firehose writes them): (line, doc, error, whether it
    has a name twice on its record array's path)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as first_error:
        error = first_error
    else:
        yield 1, doc, None, twice_on_path(data, doc, fmt)
        return
    text = data.decode("utf-8", "replace")
    names = NamesTwice()
    decoder = json.JSONDecoder(object_pairs_hook=names)
    pos, count = 0, 0
    line, counted = 1, 0  # the line at `counted`: newlines are counted once each, not from the start per document
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            return
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            doc, end = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError):  # the json module recurses: deep nesting is malformed here
            problem = (
                (too_deep(error) or json_problem(error, data)) if count == 0 else "malformed JSON after a document"
            )
            yield line, None, problem, False
            return
        count += 1
        yield line, doc, None, names.on_path(doc, fmt)
        pos = end


def read_records(
    stream: io.BufferedReader, label: str, fmt: str, whole: bool, counters: Counters, whole_bytes: int
) -> Iterator[Batch]:
    """Read one file of a known format: (events, rejected) per record, lines and skipped records counted.

    `whole` (from `detect_format`) reads the file as one JSON document (or several concatenated): decoded whole
    when it is at most `whole_bytes`, else read as a stream of its records."""
    if whole:
        return _whole_document(stream, label, fmt, counters, whole_bytes)
    if fmt == "apiserver":
        return _apiserver_lines(stream, label, counters)
    if fmt == "cloudwatch-insights":
        return _insights(stream, label, counters)
    return _lines(stream, label, _s3_line if fmt == "cloudwatch-s3" else _json_line(fmt), counters)


def _whole_document(
    stream: io.BufferedReader, label: str, fmt: str, counters: Counters, whole_bytes: int
) -> Iterator[Batch]:
    data = stream.read(whole_bytes + 1) if whole_bytes > 0 else b""
    whole = 0 < whole_bytes and len(data) <= whole_bytes
    documents = list(_documents(data, fmt)) if whole else []
    # a name twice on a record array's path: what a stream reads is the one reading (`outline`)
    if not whole or any(twice for *_, twice in documents):
        yield from _streamed(DocumentReader(stream, data, label, fmt, MAX_LINE_BYTES), counters)
        return
    counters.lines += data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    for line, doc, error, _ in documents:
        out = RecordCollector()
        if error is not None:
            out.reject(f"{label}:{line}", error, data[:PAYLOAD_CAP])
        else:
            convert_document(doc, f"{label}:{line}", fmt, out)
        yield _batch(out, counters)


def _streamed(reader: DocumentReader, counters: Counters) -> Iterator[Batch]:
    """The records of a document read as a stream, in batches of BATCH_RECORDS or BATCH_BYTES (so that the
    rejects a batch keeps hold little); what was read when reading fails is handed on before the error."""
    records = reader.records()
    out = RecordCollector()
    count, start = 0, reader.offset
    while True:
        try:
            record = next(records, None)
        except UNREADABLE:
            counters.lines, counters.failed_line = reader.line, reader.stop_line
            yield _batch(out, counters)
            raise
        if record is None:
            break
        convert, item, origin, n = record
        convert(item, origin, n, out)
        count += 1
        if count == BATCH_RECORDS or reader.offset - start >= BATCH_BYTES:
            counters.lines = reader.line
            yield _batch(out, counters)
            out, count, start = RecordCollector(), 0, reader.offset
    counters.lines = reader.lines
    yield _batch(out, counters)


def _lines(stream: io.BufferedReader, label: str, read_line: LineReader, counters: Counters) -> Iterator[Batch]:
    for lineno, text in enumerate(lines_of(stream), start=1):
        counters.lines = lineno
        out = RecordCollector()
        if is_overlong(text):
            item, more = overlong(f"{label}:{lineno}", text, stream)
            out.rejected.add(item)
            yield _batch(out, counters)
            if not more:
                return
            continue
        if text.isspace():
            continue
        read_line(text, f"{label}:{lineno}", out)
        yield _batch(out, counters)


def _insights(stream: io.BufferedReader, label: str, counters: Counters) -> Iterator[Batch]:
    # a CSV field may span lines, so an over-long line ends the file here (csv cannot resume inside a record)
    overlong_at: list[int] = []

    def text_lines() -> Iterator[str]:
        for lineno, line in enumerate(lines_of(stream), start=1):
            if is_overlong(line):
                overlong_at.append(lineno)
                return
            yield line.decode("utf-8", "replace")

    csv.field_size_limit(MAX_LINE_BYTES)  # not csv's default 128 KiB: a CloudWatch message reaches 256 KiB
    yield from _insight_rows(text_lines(), label, counters)
    if overlong_at:
        out = RecordCollector()
        reason = f"line longer than {MAX_LINE_BYTES} bytes: the rest of the file is not read"
        out.reject(f"{label}:{overlong_at[0]}", reason, None)
        yield _batch(out, counters)


def _insight_rows(text: Iterator[str], label: str, counters: Counters) -> Iterator[Batch]:
    reader = csv.reader(text)
    header: list[str] | None = None
    for row in reader:
        counters.lines = reader.line_num
        origin = f"{label}:{reader.line_num}"
        if header is None:
            header = [h.strip() for h in row]
            if "@message" not in header:
                out = RecordCollector()
                out.reject(origin, "a Logs Insights CSV needs a @message column", ",".join(row))
                yield _batch(out, counters)
                return
            continue
        if not row:
            continue
        out = RecordCollector()
        record = dict(zip(header, row, strict=False))
        stream_name = record.get("@logStream")
        if stream_name and not stream_name.startswith(AUDIT_STREAM_PREFIX):
            out.skipped += 1
        else:
            out.message(origin, record.get("@message"), "@message")
        yield _batch(out, counters)
