"""Converters of one decoded record of each archive format to audit Events, and the collector of their results."""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from detectors.errors import EventError
from detectors.events import AuditEvent, Rejected, Rejections, json_problem, split_document, validate_event
from detectors.limits import MAX_EVENT_DEPTH, cut_deep, limit_problem
from ingest.archives.files import MAX_DOCUMENT_BYTES, inflate
from ingest.archives.formats import shape_of
from ingest.archives.gke import gke_event
from ingest.archives.normalise import elastic_event

PAYLOAD_CAP = 4096  # bytes of an unreadable record kept with its reject
CW_TRUNCATED = "[Truncated...]"
AUDIT_STREAM_PREFIX = "kube-apiserver-audit"
AKS_AUDIT_CATEGORIES = frozenset({"kube-audit", "kube-audit-admin"})
_TOO_DEEP = "depth limit exceeded"  # orjson's message past detectors.limits.ORJSON_MAX_DEPTH levels


def too_deep(exc: orjson.JSONDecodeError) -> str | None:
    """The reason for text that orjson stopped reading at its depth limit, as an event nested past
    MAX_EVENT_DEPTH (but within orjson's) is rejected: not "malformed", which it may not be."""
    return f"nested deeper than {MAX_EVENT_DEPTH} levels" if exc.msg == _TOO_DEEP else None


def malformed_json(exc: orjson.JSONDecodeError, text: bytes | str) -> str:
    """The reason given for text that is not JSON (or not UTF-8: where)."""
    deep = too_deep(exc)
    if deep is not None:
        return deep
    problem = json_problem(exc, text)
    return problem if not problem.startswith("malformed JSON") else f"malformed JSON: {exc.msg} (char {exc.pos})"


class RecordCollector:
    """Collects one record's events and rejects (the first MAX_KEPT_REJECTED rejects kept, all counted)."""

    __slots__ = ("events", "rejected", "skipped")

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.rejected = Rejections()
        self.skipped = 0

    def __bool__(self) -> bool:
        """Whether it holds anything: events, rejects or records skipped."""
        return bool(self.events or self.rejected or self.skipped)

    def merge(self, other: RecordCollector) -> None:
        self.events.extend(other.events)
        self.rejected.merge(other.rejected)
        self.skipped += other.skipped

    def reject(self, origin: str, reason: str, payload: Any) -> None:
        if self.rejected.full:
            self.rejected.count()
            return
        if isinstance(payload, (str, bytes)) and len(payload) > PAYLOAD_CAP:
            payload = payload[:PAYLOAD_CAP]
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8", "replace")
        self.rejected.add(Rejected(origin, reason, cut_deep(payload)))

    def event(self, origin: str, raw: Any) -> None:
        """An Event a converter built (or found) in a record."""
        reason = validate_event(raw)
        if reason is None:
            reason = limit_problem(raw)
        if reason is None:
            self.events.append(AuditEvent(raw=raw, origin=origin))
        else:
            self.reject(origin, reason, raw)

    def document(self, origin: str, doc: Any, where: str = "") -> None:
        """An apiserver document: an Event, an EventList or an array of them (`where` it is in the record)."""
        try:
            events, rejected = split_document(doc, origin=origin, where=where)
        except EventError as exc:
            self.reject(f"{origin}#{where}" if where else origin, str(exc), doc)
            return
        self.events.extend(events)
        self.rejected.merge(rejected)

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
            self.reject(origin, f"{what}: {malformed_json(exc, message)}", message)
            return
        self.document(origin, doc)


def _sub(origin: str, n: int) -> str:
    return f"{origin}#{n}"


# --- per-format converters of one decoded document --------------------------------------------------------


def _apiserver(doc: Any, origin: str, out: RecordCollector) -> None:
    out.document(origin, doc)


def _cloudwatch_event(item: Any, origin: str, out: RecordCollector) -> None:
    if not isinstance(item, dict):
        out.reject(origin, "a CloudWatch Logs event must be an object", item)
        return
    stream = item.get("logStreamName")
    if isinstance(stream, str) and not stream.startswith(AUDIT_STREAM_PREFIX):
        out.skipped += 1  # api, authenticator, controllerManager, scheduler streams share the log group
        return
    out.message(origin, item.get("message"), "CloudWatch message")


def _cloudwatch(doc: Any, origin: str, out: RecordCollector) -> None:
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


def _subscription(doc: Any, origin: str, out: RecordCollector) -> None:
    if isinstance(doc, dict) and isinstance(doc.get("awslogs"), dict):  # a Lambda invocation event
        doc = doc["awslogs"].get("data")
    if isinstance(doc, str):
        try:
            data = inflate(base64.b64decode(doc, validate=True), MAX_DOCUMENT_BYTES)
            if data is None:
                out.reject(origin, f"a subscription message larger than {MAX_DOCUMENT_BYTES} bytes inflated", None)
                return
            doc = orjson.loads(data)
        except (ValueError, OSError, EOFError, zlib.error) as exc:  # ValueError: binascii's, non-ASCII, JSON's
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


def _gke_entry(entry: Any, origin: str, out: RecordCollector) -> None:
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


def _gke(doc: Any, origin: str, out: RecordCollector) -> None:
    if isinstance(doc, dict) and isinstance(doc.get("entries"), list):  # entries.list API response
        doc = doc["entries"]
    if isinstance(doc, list):
        for n, entry in enumerate(doc):
            _gke_entry(entry, _sub(origin, n), out)
    else:
        _gke_entry(doc, origin, out)


def _aks_record(record: Any, origin: str, out: RecordCollector) -> None:
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


def _aks(doc: Any, origin: str, out: RecordCollector) -> None:
    if isinstance(doc, dict) and isinstance(doc.get("records"), list):
        for n, record in enumerate(doc["records"]):
            _aks_record(record, _sub(origin, n), out)
    elif isinstance(doc, list):
        for n, record in enumerate(doc):
            _aks_record(record, _sub(origin, n), out)
    else:
        _aks_record(doc, origin, out)


def _elastic_doc(doc: Any, origin: str, out: RecordCollector) -> None:
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
            out.reject(origin, f"event.original: {malformed_json(exc, original)}", original)
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


def _elastic(doc: Any, origin: str, out: RecordCollector) -> None:
    if isinstance(doc, dict) and isinstance(doc.get("hits"), dict) and isinstance(doc["hits"].get("hits"), list):
        doc = doc["hits"]["hits"]  # a search response
    if isinstance(doc, list):
        for n, item in enumerate(doc):
            _elastic_doc(item, _sub(origin, n), out)
    else:
        _elastic_doc(doc, origin, out)


Converter = Callable[[Any, str, RecordCollector], None]
CONVERTERS: dict[str, Converter] = {
    "apiserver": _apiserver,
    "cloudwatch": _cloudwatch,
    "cloudwatch-subscription": _subscription,
    "gke": _gke,
    "aks": _aks,
    "elastic": _elastic,
}


# --- one record of a document's record array, for documents read as a stream ----------------------------------

# (record, the document's origin, the record's index, out): what the converter of the whole document does with it
ItemConverter = Callable[[Any, str, int, RecordCollector], None]


def _indexed(convert: Converter) -> ItemConverter:
    def item(record: Any, origin: str, n: int, out: RecordCollector) -> None:
        convert(record, _sub(origin, n), out)

    return item


def _event_list_item(item: Any, origin: str, n: int, out: RecordCollector) -> None:
    out.event(f"{origin}#items[{n}]", item)


def _listed_event(item: Any, origin: str, n: int, out: RecordCollector) -> None:
    if type(item) is dict and item.get("kind") == "EventList":
        out.document(origin, item, where=f"[{n}]")
    else:
        out.event(f"{origin}#[{n}]", item)


@dataclass(frozen=True)
class RecordArray:
    """Where a format's document keeps its records, and how one is converted: as the converter of the whole
    document does, with the same origin (`suffix`, n the record's index). `listed`, `listed_suffix`: the same for
    a document that is a JSON array of records."""

    path: tuple[str, ...]
    item: ItemConverter
    suffix: str
    listed: ItemConverter
    listed_suffix: str

    @property
    def jq(self) -> str:
        """The records' path as jq writes it (`.hits.hits[]`)."""
        return "." + ".".join(self.path) + "[]"


def _array_of(path: tuple[str, ...], convert: Converter) -> RecordArray:
    item = _indexed(convert)
    return RecordArray(path, item, "#{}", item, "#{}")


RECORD_ARRAYS: dict[str, RecordArray] = {
    "apiserver": RecordArray(("items",), _event_list_item, "#items[{}]", _listed_event, "#[{}]"),
    "cloudwatch": _array_of(("events",), _cloudwatch_event),
    "gke": _array_of(("entries",), _gke_entry),
    "aks": _array_of(("records",), _aks_record),
    "elastic": _array_of(("hits", "hits"), _elastic_doc),
}
