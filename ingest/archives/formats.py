"""Format sniffing: which archive format a file holds, told from its first (decompressed) bytes."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

FORMATS = (
    "apiserver", "cloudwatch", "cloudwatch-s3", "cloudwatch-subscription", "cloudwatch-insights", "gke", "aks",
    "elastic",
)  # fmt: skip

# A JSON log never starts with a time: whatever the first message is (it may be junk), the file is an export
_S3_LINE = re.compile(rb"^\d{4}-\d{2}-\d{2}T[0-9:.]+(Z|[+-]\d{2}:?\d{2})? ")
_BASE64_GZIP = b"H4sI"  # base64 of the gzip magic bytes 1f 8b 08
GZIP_MAGIC = b"\x1f\x8b"


def shape_of(doc: Any) -> str:
    """The format of one decoded JSON document (a record, a line or a whole file)."""
    while isinstance(doc, list):  # the first element's (a loop: nesting can be 1000 deep)
        if not doc:
            return "apiserver"
        doc = doc[0]
    if not isinstance(doc, dict):
        return "apiserver"
    if doc.get("kind") in ("Event", "EventList") or "auditID" in doc:
        return "apiserver"
    if "protoPayload" in doc or "logName" in doc or "insertId" in doc:
        return "gke"
    if "messageType" in doc or "logEvents" in doc or "awslogs" in doc:
        return "cloudwatch-subscription"
    if "records" in doc or ("category" in doc and ("properties" in doc or "log_s" in doc)):
        return "aks"
    if "_source" in doc or "hits" in doc or "kubernetes" in doc or "kubernetes.audit" in doc:
        return "elastic"
    event = doc.get("event")
    if isinstance(event, dict) and "original" in event:
        return "elastic"
    if isinstance(doc.get("events"), list) or ("message" in doc and ("logStreamName" in doc or "eventId" in doc)):
        return "cloudwatch"
    return "apiserver"


def _concatenated(line: bytes) -> bool:
    """Whether a line holds JSON documents one after another (`}{`, as Firehose writes them)."""
    text = line.decode("utf-8", "replace")
    try:
        _doc, end = json.JSONDecoder().raw_decode(text)
    except (ValueError, RecursionError):  # the json module recurses: deep nesting is no document here
        return False
    return text[end:].lstrip()[:1] in ("{", "[")


def detect_format(head: bytes) -> tuple[str, bool]:
    """(format, whole_document) from the first bytes of a (decompressed) file.

    `whole_document` is true when the first line is not a complete JSON value on its own (pretty-printed
    JSON), so the file must be parsed as one document rather than line by line.
    """
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(_BASE64_GZIP):
        return "cloudwatch-subscription", False
    if text.startswith((b"@timestamp", b'"@timestamp"', b"@message", b'"@message"')):
        return "cloudwatch-insights", False
    if _S3_LINE.match(text):
        return "cloudwatch-s3", False
    end = text.find(b"\n")
    first = text if end < 0 else text[:end]
    try:
        return shape_of(orjson.loads(first)), False
    except orjson.JSONDecodeError:
        pass
    whole = first.strip() in (b"{", b"[") or (end < 0 and text[:1] in (b"{", b"[")) or _concatenated(first)
    for key, fmt in ((b'"protoPayload"', "gke"), (b'"logEvents"', "cloudwatch-subscription"),
                     (b'"messageType"', "cloudwatch-subscription"), (b'"records"', "aks"),
                     (b'"kubernetes.audit', "elastic"), (b'"_source"', "elastic"), (b'"original"', "elastic"),
                     (b'"auditID"', "apiserver"), (b'"events"', "cloudwatch")):  # fmt: skip
        if key in text:
            return fmt, whole
    return "apiserver", whole
