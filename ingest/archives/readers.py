"""Record readers: lines or whole documents of one archive format -> AuditEvents and Rejected items."""

from __future__ import annotations

import base64
import binascii
import csv
import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from detectors.errors import EventError
from detectors.events import AuditEvent, Rejected, split_document, validate_event
from ingest.archives.detect import shape_of
from ingest.archives.gke import gke_event
from ingest.archives.normalise import elastic_event, micro_time

Batch = tuple[list[AuditEvent], list[Rejected]]
_PAYLOAD_CAP = 4096
CW_TRUNCATED = "[Truncated...]"
AUDIT_STREAM_PREFIX = "kube-apiserver-audit"
AKS_AUDIT_CATEGORIES = frozenset({"kube-audit", "kube-audit-admin"})


@dataclass
class Counters:
    """What a read saw besides events and rejects: lines, records skipped on purpose, duplicates dropped."""

    lines: int = 0
    skipped: int = 0
    duplicates: int = 0


@dataclass
class Deduper:
    """Drops a second copy of an event across a file set: same auditID, stage and stageTimestamp.

    The stageTimestamp is part of the key because clients choose auditIDs (the `Audit-ID` header): a forged
    ID must not hide a later request. Memory is bounded: two generations of `generation` keys each, so
    copies further apart than that are kept.
    """

    generation: int = 1_000_000
    current: set[tuple[Any, Any, Any]] = field(default_factory=set)
    previous: set[tuple[Any, Any, Any]] = field(default_factory=set)

    def unique(self, events: list[AuditEvent], counters: Counters) -> list[AuditEvent]:
        kept: list[AuditEvent] = []
        current, previous = self.current, self.previous
        for event in events:
            raw = event.raw
            key = (raw["auditID"], raw["stage"], raw.get("stageTimestamp"))
            if key in current or key in previous:
                counters.duplicates += 1
                continue
            current.add(key)
            kept.append(event)
        if len(current) >= self.generation:
            self.previous, self.current = current, set()
        return kept


class _Out:
    """Collects one record's events and rejects."""

    __slots__ = ("events", "rejected", "skipped")

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.rejected: list[Rejected] = []
        self.skipped = 0

    def reject(self, origin: str, reason: str, payload: Any) -> None:
        if isinstance(payload, (str, bytes)) and len(payload) > _PAYLOAD_CAP:
            payload = payload[:_PAYLOAD_CAP]
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8", "replace")
        self.rejected.append(Rejected(origin, reason, payload))

    def event(self, origin: str, raw: Any) -> None:
        reason = validate_event(raw)
        if reason is None:
            self.events.append(AuditEvent(raw=raw, origin=origin))
        else:
            self.rejected.append(Rejected(origin, reason, raw))

    def document(self, origin: str, doc: Any) -> None:
        """An apiserver document: an Event, an EventList or an array of them."""
        try:
            events, rejected = split_document(doc, origin=origin)
        except EventError as exc:
            self.rejected.append(Rejected(origin, str(exc), doc))
            return
        self.events.extend(events)
        self.rejected.extend(rejected)

    def message(self, origin: str, message: Any, what: str) -> None:
        """A log message that should hold one Event as JSON text (CloudWatch, AKS)."""
        if isinstance(message, dict):
            self.document(origin, message)
            return
        if not isinstance(message, str):
            self.reject(origin, f"{what} is not a string", message)
            return
        if message.rstrip().endswith(CW_TRUNCATED):
            self.reject(origin, f"{what} was truncated by CloudWatch Logs (event over 256 KB): not valid JSON", message)
            return
        try:
            doc = orjson.loads(message)
        except orjson.JSONDecodeError as exc:
            self.reject(origin, f"{what}: malformed JSON: {exc.msg} (char {exc.pos})", message)
            return
        self.document(origin, doc)


def _sub(origin: str, n: int) -> str:
    return f"{origin}#{n}"


# --- per-format converters of one decoded document --------------------------------------------------------


def _apiserver(doc: Any, origin: str, out: _Out) -> None:
    out.document(origin, doc)


def _cloudwatch_event(item: Any, origin: str, out: _Out) -> None:
    if not isinstance(item, dict):
        out.reject(origin, "a CloudWatch Logs event must be an object", item)
        return
    stream = item.get("logStreamName")
    if isinstance(stream, str) and not stream.startswith(AUDIT_STREAM_PREFIX):
        out.skipped += 1  # api, authenticator, controllerManager, scheduler streams share the log group
        return
    out.message(origin, item.get("message"), "CloudWatch message")


def _cloudwatch(doc: Any, origin: str, out: _Out) -> None:
    if isinstance(doc, dict) and isinstance(doc.get("events"), list):
        for n, item in enumerate(doc["events"]):
            _cloudwatch_event(item, _sub(origin, n), out)
    elif isinstance(doc, list):
        for n, item in enumerate(doc):
            _cloudwatch_event(item, _sub(origin, n), out)
    elif isinstance(doc, dict) and "message" in doc:
        _cloudwatch_event(doc, origin, out)
    else:
        out.reject(origin, 'not CloudWatch Logs output: expected {"events": [...]} or an event with "message"', doc)


def _subscription(doc: Any, origin: str, out: _Out) -> None:
    if isinstance(doc, dict) and isinstance(doc.get("awslogs"), dict):  # a Lambda invocation event
        doc = doc["awslogs"].get("data")
    if isinstance(doc, str):
        try:
            doc = orjson.loads(gzip.decompress(base64.b64decode(doc, validate=True)))
        except (binascii.Error, OSError, EOFError, zlib.error, orjson.JSONDecodeError) as exc:
            out.reject(origin, f"not base64 gzip JSON of a CloudWatch subscription message: {exc}", doc)
            return
    if not isinstance(doc, dict):
        out.reject(origin, "a CloudWatch subscription message must be an object", doc)
        return
    kind = doc.get("messageType")
    if kind == "CONTROL_MESSAGE":
        out.skipped += 1
        return
    if kind != "DATA_MESSAGE" or not isinstance(doc.get("logEvents"), list):
        out.reject(origin, f"messageType {kind!r} is not DATA_MESSAGE with logEvents", doc)
        return
    stream = doc.get("logStream")
    if isinstance(stream, str) and not stream.startswith(AUDIT_STREAM_PREFIX):
        out.skipped += len(doc["logEvents"])
        return
    for n, item in enumerate(doc["logEvents"]):
        if not isinstance(item, dict):
            out.reject(_sub(origin, n), "a logEvent must be an object", item)
        else:
            out.message(_sub(origin, n), item.get("message"), "CloudWatch message")


def _gke_entry(entry: Any, origin: str, out: _Out) -> None:
    if isinstance(entry, dict) and isinstance(entry.get("message"), dict) and "data" in entry["message"]:
        try:  # a Pub/Sub push envelope: message.data is the base64 LogEntry
            entry = orjson.loads(base64.b64decode(entry["message"]["data"]))
        except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
            out.reject(origin, f"Pub/Sub message.data is not base64 JSON: {exc}", entry)
            return
    if isinstance(entry, dict):
        resource = entry.get("resource")
        if isinstance(resource, dict) and resource.get("type") not in (None, "k8s_cluster"):
            out.skipped += 1
            return
    result = gke_event(entry)
    if isinstance(result, str):
        out.reject(origin, result, entry)
    else:
        out.event(origin, result)


def _gke(doc: Any, origin: str, out: _Out) -> None:
    if isinstance(doc, dict) and isinstance(doc.get("entries"), list):  # entries.list API response
        doc = doc["entries"]
    if isinstance(doc, list):
        for n, entry in enumerate(doc):
            _gke_entry(entry, _sub(origin, n), out)
    else:
        _gke_entry(doc, origin, out)


def _aks_record(record: Any, origin: str, out: _Out) -> None:
    if not isinstance(record, dict):
        out.reject(origin, "an AKS diagnostic record must be an object", record)
        return
    category = record.get("category", record.get("Category"))
    if category not in AKS_AUDIT_CATEGORIES:
        out.skipped += 1  # kube-apiserver, kube-controller-manager, ... carry klog text
        return
    props = record.get("properties")
    log = props.get("log") if isinstance(props, dict) else record.get("log_s")
    if log is None:
        out.reject(origin, "AKS record without properties.log", record)
        return
    out.message(origin, log, "AKS properties.log")


def _aks(doc: Any, origin: str, out: _Out) -> None:
    if isinstance(doc, dict) and isinstance(doc.get("records"), list):
        for n, record in enumerate(doc["records"]):
            _aks_record(record, _sub(origin, n), out)
    elif isinstance(doc, list):
        for n, record in enumerate(doc):
            _aks_record(record, _sub(origin, n), out)
    else:
        _aks_record(doc, origin, out)


def _elastic_doc(doc: Any, origin: str, out: _Out) -> None:
    if isinstance(doc, dict) and isinstance(doc.get("_source"), dict):
        doc = doc["_source"]
    if not isinstance(doc, dict):
        out.reject(origin, "an Elastic document must be an object", doc)
        return
    event = doc.get("event")
    original = event.get("original") if isinstance(event, dict) else doc.get("event.original")
    if isinstance(original, str):
        try:
            parsed = orjson.loads(original)
        except orjson.JSONDecodeError as exc:
            out.reject(origin, f"event.original: malformed JSON: {exc.msg} (char {exc.pos})", original)
            return
        fmt = shape_of(parsed)
        if fmt == "gke":
            _gke_entry(parsed, origin, out)
        elif fmt == "aks":
            _aks(parsed, origin, out)
        else:
            out.document(origin, parsed)
        return
    result = elastic_event(doc)
    if isinstance(result, str):
        out.reject(origin, result, doc)
    else:
        out.event(origin, result)


def _elastic(doc: Any, origin: str, out: _Out) -> None:
    if isinstance(doc, dict) and isinstance(doc.get("hits"), dict) and isinstance(doc["hits"].get("hits"), list):
        doc = doc["hits"]["hits"]  # a search response
    if isinstance(doc, list):
        for n, item in enumerate(doc):
            _elastic_doc(item, _sub(origin, n), out)
    else:
        _elastic_doc(doc, origin, out)


CONVERTERS: dict[str, Callable[[Any, str, _Out], None]] = {
    "apiserver": _apiserver,
    "cloudwatch": _cloudwatch,
    "cloudwatch-subscription": _subscription,
    "gke": _gke,
    "aks": _aks,
    "elastic": _elastic,
}


# --- line formats -----------------------------------------------------------------------------------------


def _s3_line(line: bytes, origin: str, out: _Out) -> None:
    text = line.decode("utf-8", "replace").rstrip("\r\n")
    stamp, sep, message = text.partition(" ")
    if not sep or micro_time(stamp) is None:
        out.reject(origin, "not a CloudWatch export line '<ISO timestamp> <message>'", text)
        return
    out.message(origin, message, "CloudWatch message")


def _json_line(convert: Callable[[Any, str, _Out], None]) -> Callable[[bytes, str, _Out], None]:
    def read(line: bytes, origin: str, out: _Out) -> None:
        stripped = line.strip()
        if convert is _subscription and stripped[:1] not in (b"{", b"["):
            convert(stripped.decode("ascii", "replace"), origin, out)  # a base64 Kinesis record
            return
        try:
            doc = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            reason = f"malformed JSON: {exc.msg} (char {exc.pos})"
            if not line.endswith(b"\n"):
                reason += "; the last line looks truncated"
            out.reject(origin, reason, line)
            return
        convert(doc, origin, out)

    return read


def _batch(out: _Out, counters: Counters) -> Batch:
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


def read_records(stream: IO[bytes], label: str, fmt: str, whole: bool, counters: Counters) -> Iterator[Batch]:
    """Read one file of a known format; yield (events, rejected) per record. (apiserver JSON lines take the
    replay's own fast path and never come here.)"""
    peek = getattr(stream, "peek", None)
    if whole or (fmt == "cloudwatch-subscription" and peek is not None and peek(2)[:2] == b"\x1f\x8b"):
        data = stream.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        counters.lines += data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        convert = CONVERTERS.get(fmt, _apiserver)
        for line, doc, error in _documents(data, label):
            out = _Out()
            if error is not None:
                out.reject(f"{label}:{line}", error, data[:_PAYLOAD_CAP])
            else:
                convert(doc, f"{label}:{line}", out)
            yield _batch(out, counters)
        return
    if fmt == "cloudwatch-insights":
        yield from _insights(stream, label, counters)
        return
    read_line = _s3_line if fmt == "cloudwatch-s3" else _json_line(CONVERTERS.get(fmt, _apiserver))
    for lineno, text in enumerate(stream, start=1):
        counters.lines += 1
        if not text.strip():
            continue
        out = _Out()
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
                out = _Out()
                out.reject(origin, "a Logs Insights CSV needs a @message column", ",".join(row))
                yield _batch(out, counters)
                return
            continue
        if not row:
            continue
        out = _Out()
        record = dict(zip(header, row, strict=False))
        stream_name = record.get("@logStream")
        if stream_name and not stream_name.startswith(AUDIT_STREAM_PREFIX):
            out.skipped += 1
        else:
            out.message(origin, record.get("@message"), "@message")
        yield _batch(out, counters)
