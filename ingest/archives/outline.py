"""How a JSON document with a record array (`.items[]`, `.events[]`...: `RECORD_ARRAYS`) is judged: as a reader of
it as a stream must, whether it is read so or decoded whole (`convert_document`), so that both give the same events
and rejects wherever its members stand (but for what is over the stream's limit, and damage: see `stream`).

Its members other than the records (`kind`, `apiVersion`...) say whether it is a list of records. Those before the
array are read before any record: when they make it none (an EventList of another apiVersion), it is converted with
its array empty, and its records are not read. Those after it are read once its records were handed on (a replay
has detected them, a publish sent them), which cannot be taken back: the records are kept, and when these members
make it no list of records (`kind` "Pod" written after `items`, as a sorted-keys dump writes `kind`), that is one
more reject at the document's line, which says so.

A name twice in an object on the array's path (two `items`) is no document JSON defines: orjson keeps the last
value, a stream has read the first. The stream's answer is the one: the first array is read, a second is a reject
(see `stream`), and a document decoded whole that has one is read as a stream (`NamesTwice` finds it).
"""

from __future__ import annotations

import json
from typing import Any

from ingest.archives.converters import CONVERTERS, RECORD_ARRAYS, RecordArray, RecordCollector

Parts = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]


def late_reason(array: RecordArray, probe: RecordCollector) -> str | None:
    """Why members after the record array make a document no list of records, `probe` being the document converted
    with its array empty; None when they do not."""
    if probe.rejected.kept:
        what = probe.rejected.kept[0].reason
    elif probe.events or probe.skipped or probe.rejected:
        what = "not a list of records"
    else:
        return None
    return f"{what}: said by a member after the record array ({array.jq}), whose records were read before it"


def convert_document(doc: Any, origin: str, fmt: str, out: RecordCollector) -> None:
    """One decoded document of a file of the format `fmt`, converted as a stream of it is: when it has a record
    array, judged on its members before the array, then the records, then its members after it."""
    convert = CONVERTERS.get(fmt, CONVERTERS["apiserver"])
    array = RECORD_ARRAYS.get(fmt)
    parts = _parts(doc, array.path) if array is not None and type(doc) is dict else None
    if array is None or parts is None:
        convert(doc, origin, out)
        return
    head, body, emptied = parts
    judged = RecordCollector()
    convert(head, origin, judged)
    if judged:
        out.merge(judged)
        return
    convert(body, origin, out)
    if emptied != head:
        probe = RecordCollector()
        convert(emptied, origin, probe)
        reason = late_reason(array, probe)
        if reason is not None:
            out.reject(origin, reason, emptied)


def _parts(obj: dict[str, Any], path: tuple[str, ...]) -> Parts | None:
    """`obj` on `path` to its record array: (its members before the array, with the array empty; those and the
    array; all its members, the array empty), or None when the array is not there."""
    name, rest = path[0], path[1:]
    value = obj.get(name)
    head_value: Any
    body_value: Any
    emptied_value: Any
    if rest:
        inner = _parts(value, rest) if type(value) is dict else None
        if inner is None:
            return None
        head_value, body_value, emptied_value = inner
    elif type(value) is list:
        head_value, body_value, emptied_value = [], value, []
    else:
        return None
    head: dict[str, Any] = {}
    for key, item in obj.items():
        if key == name:
            break
        head[key] = item
    return head | {name: head_value}, head | {name: body_value}, obj | {name: emptied_value}


class NamesTwice:
    """json's `object_pairs_hook` that notes the objects in which a member name comes twice."""

    def __init__(self) -> None:
        self._objects: list[dict[str, Any]] = []

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) < len(pairs):
            self._objects.append(obj)
        return obj

    def on_path(self, doc: Any, fmt: str) -> bool:
        """Whether one of the objects on the path to `doc`'s record array (decoded with this hook) had a name twice."""
        array = RECORD_ARRAYS.get(fmt)
        for name in array.path if array is not None else ():
            if type(doc) is not dict:
                return False
            if any(obj is doc for obj in self._objects):
                return True
            doc = doc.get(name)
        return False


def twice_on_path(data: bytes, doc: Any, fmt: str) -> bool:
    """Whether `doc`, decoded from `data` (by orjson, which keeps a name's last value and says nothing), has a name
    twice in an object on its record array's path: json decodes it again to tell."""
    if fmt not in RECORD_ARRAYS or type(doc) is not dict:
        return False
    names = NamesTwice()
    try:
        again = json.loads(data, object_pairs_hook=names)
    except (ValueError, RecursionError):  # what orjson reads and json does not: no such document
        return False
    return names.on_path(again, fmt)
