"""Record readers: the lines or whole documents of one archive file -> AuditEvents and Rejected items."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from detectors.errors import EventError
from detectors.events import AuditEvent, Rejected, split_document, validate_event
from ingest.archives.converters import (
    AUDIT_STREAM_PREFIX,
    CONVERTERS,
    PAYLOAD_CAP,
    RecordCollector,
    malformed_json,
)
from ingest.archives.formats import GZIP_MAGIC
from ingest.archives.normalise import micro_time

Batch = tuple[list[AuditEvent], list[Rejected]]
LineReader = Callable[[bytes, str, RecordCollector], None]


@dataclass
class Counters:
    """What a read saw besides events and rejects: lines, records skipped on purpose, duplicates dropped."""

    lines: int = 0
    skipped: int = 0
    duplicates: int = 0


def malformed_line(exc: orjson.JSONDecodeError, line: bytes) -> str:
    """The reason given for a line that is not JSON (the one message for every line format)."""
    reason = malformed_json(exc)
    if not line.endswith(b"\n"):
        reason += "; the last line looks truncated"
    return reason


# --- apiserver JSON lines: the fast path ------------------------------------------------------------------


def _apiserver_line(line: bytes, origin: str) -> Batch:
    """One line of the log backend -> events and rejected items (the fast path is one plain Event per line)."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return [], [Rejected(origin, malformed_line(exc, line), line[:PAYLOAD_CAP].decode("utf-8", "replace"))]
    if type(doc) is dict and doc.get("kind") == "Event":
        invalid = validate_event(doc)
        if invalid is None:
            return [AuditEvent(raw=doc, origin=origin)], []
        return [], [Rejected(origin, invalid, doc)]
    try:
        return split_document(doc, origin=origin)
    except EventError as exc:  # the whole line is not audit data
        return [], [Rejected(origin, str(exc), doc)]


def _apiserver_lines(stream: IO[bytes], label: str, counters: Counters) -> Iterator[Batch]:
    for lineno, line in enumerate(stream, start=1):
        counters.lines += 1
        if line.strip():
            yield _apiserver_line(line, f"{label}:{lineno}")


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


def _documents(data: bytes, label: str) -> Iterator[tuple[int, Any, str | None]]:
    """One JSON document, or several concatenated (`}{`, as Firehose writes them): (line, doc, error)."""
    try:
        yield 1, orjson.loads(data), None
        return
    except orjson.JSONDecodeError as first_error:
        error = first_error
    text = data.decode("utf-8", "replace")
    decoder = json.JSONDecoder()
    pos, count = 0, 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            return
        try:
            doc, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            line = text.count("\n", 0, pos) + 1
            yield line, None, f"malformed JSON: {error.msg}" if count == 0 else "malformed JSON after a document"
            return
        count += 1
        yield text.count("\n", 0, pos) + 1, doc, None
        pos = end


def read_records(stream: io.BufferedReader, label: str, fmt: str, whole: bool, counters: Counters) -> Iterator[Batch]:
    """Read one file of a known format: (events, rejected) per record, lines and skipped records counted.

    `whole` (from `detect_format`) reads the file as one JSON document (or several concatenated)."""
    if whole or (fmt == "cloudwatch-subscription" and stream.peek(2)[:2] == GZIP_MAGIC):
        return _whole_document(stream, label, fmt, counters)
    if fmt == "apiserver":
        return _apiserver_lines(stream, label, counters)
    if fmt == "cloudwatch-insights":
        return _insights(stream, label, counters)
    return _lines(stream, label, _s3_line if fmt == "cloudwatch-s3" else _json_line(fmt), counters)


def _whole_document(stream: IO[bytes], label: str, fmt: str, counters: Counters) -> Iterator[Batch]:
    data = stream.read()
    if data[:2] == GZIP_MAGIC:
        data = gzip.decompress(data)
    counters.lines += data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    convert = CONVERTERS.get(fmt, CONVERTERS["apiserver"])
    for line, doc, error in _documents(data, label):
        out = RecordCollector()
        if error is not None:
            out.reject(f"{label}:{line}", error, data[:PAYLOAD_CAP])
        else:
            convert(doc, f"{label}:{line}", out)
        yield _batch(out, counters)


def _lines(stream: IO[bytes], label: str, read_line: LineReader, counters: Counters) -> Iterator[Batch]:
    for lineno, text in enumerate(stream, start=1):
        counters.lines += 1
        if not text.strip():
            continue
        out = RecordCollector()
        read_line(text, f"{label}:{lineno}", out)
        yield _batch(out, counters)


def _insights(stream: IO[bytes], label: str, counters: Counters) -> Iterator[Batch]:
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
    try:
        yield from _insight_rows(text, label, counters)
    finally:
        text.detach()


def _insight_rows(text: IO[str], label: str, counters: Counters) -> Iterator[Batch]:
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
