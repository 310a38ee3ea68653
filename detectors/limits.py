"""Per-item limits on audit events: how deep and how large one may be, checked without recursion; and the
cap on the copy of an event that is stored with an alert (`truncate_event`).

Nesting: built-in Kubernetes objects nest about 12 levels inside an event (responseObject, spec, template,
spec, containers, [i], env, [j], valueFrom, ...); custom resources go deeper, the deepest usual ones being
CustomResourceDefinitions themselves, whose openAPIV3Schema takes about two levels (`properties`, name) per
level of the type: 100 leaves room for a type 40 levels deep. Anything deeper is junk or an attack on
recursive code: Python stops at 1000 frames and orjson.dumps at 254 levels, so every stored, forwarded
or quarantined copy of an accepted event stays encodable.

Size: the apiserver refuses request bodies over 3 MiB (and etcd objects over 1.5 MiB); an event carries at
most the request and the response object plus metadata, so 7 MiB of JSON holds any event it writes. The size
is the text as received (a line, a body holding the event) or, inside a larger body, the event re-encoded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

MAX_EVENT_DEPTH = 100  # levels of objects and arrays, the event itself being level 1
MAX_EVENT_BYTES = 7 * 1024 * 1024  # of the event as JSON
MAX_STORED_EVENT_BYTES = 1024 * 1024  # the copy stored with an alert, as JSON (as much as a quarantined item keeps)
TRUNCATED_ANNOTATION = "auditwatch.io/truncated"  # "true" on a stored copy that lost fields to the cap

ORJSON_MAX_DEPTH = 1024  # orjson.loads refuses deeper nesting ("depth limit exceeded"); tests pin it
_WRAP = ORJSON_MAX_DEPTH - MAX_EVENT_DEPTH
_OPEN, _CLOSE = b"[" * _WRAP, b"]" * _WRAP
SHALLOW_COUNT_BYTES = 64 * 1024  # from this size counting costs about as much as the wrapper, and rarely passes


def depth_exceeds(value: Any, limit: int = MAX_EVENT_DEPTH) -> bool:
    """Whether objects and arrays nest deeper than `limit` (`value` itself is level 1); level by level, no
    recursion, so any depth is safe to ask about."""
    level = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        deeper = []
        for container in level:
            for item in container.values() if type(container) is dict else container:
                if type(item) is dict or type(item) is list:
                    deeper.append(item)
        level = deeper
    return False


def cut_deep(value: Any, limit: int = MAX_EVENT_DEPTH) -> Any:
    """`value` if it nests at most `limit` deep, else a copy whose containers below that level are replaced
    by a note: what is kept of a rejected item, so that storing or forwarding it never meets deep nesting."""
    if not depth_exceeds(value, limit):
        return value
    note = f"<cut: nested deeper than {limit} levels>"
    root: list[Any] = [None]
    pending: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 1)]  # (source, parent, key in parent, level)
    while pending:
        source, parent, key, level = pending.pop()
        if type(source) is dict:
            parent[key] = note if level > limit else {}
            if level <= limit:
                pending.extend((v, parent[key], k, level + 1) for k, v in source.items())
        elif type(source) is list:
            parent[key] = note if level > limit else [None] * len(source)
            if level <= limit:
                pending.extend((v, parent[key], i, level + 1) for i, v in enumerate(source))
        else:
            parent[key] = source
    return root[0]


def loads_bounded(data: bytes) -> tuple[Any, bool]:
    """orjson.loads, and whether the document nests at most MAX_EVENT_DEPTH deep, found at C speed.

    A text with no more opening brackets than that is within the limit (brackets in strings count too: a
    bound). Any other is parsed inside `_WRAP` levels of brackets, so that orjson's own depth limit refuses it
    if it is deeper; one that fails so is parsed again as it is: the error, or the document (then not shallow:
    its items are checked one by one), is exactly orjson's.
    """
    if len(data) < SHALLOW_COUNT_BYTES and data.count(b"{") + data.count(b"[") <= MAX_EVENT_DEPTH:
        return orjson.loads(data), True
    try:
        node = orjson.loads(b"".join((_OPEN, data, _CLOSE)))
    except orjson.JSONDecodeError:
        return orjson.loads(data), False
    for _ in range(_WRAP):
        if type(node) is not list or len(node) != 1:  # not one JSON value: `1,2`, `0],[0`
            return orjson.loads(data), False
        node = node[0]
    return node, True


def size_problem(item: Any) -> str | None:
    """Why an item is too large to accept (its JSON encoding), or None. The item must be within the depth limit."""
    try:
        size = len(orjson.dumps(item))
    except orjson.JSONEncodeError as exc:
        return f"not encodable as JSON: {exc}"
    if size > MAX_EVENT_BYTES:
        return f"event is {size} bytes of JSON, more than the limit of {MAX_EVENT_BYTES}"
    return None


def limit_problem(item: Any, *, shallow: bool = False, small: bool = False) -> str | None:
    """Why an item breaks a per-item limit, or None. `shallow`/`small`: the caller knows the text it was
    decoded from was within the depth/size limit, so that check is skipped."""
    if not shallow and depth_exceeds(item):
        return f"nested deeper than {MAX_EVENT_DEPTH} levels"
    return None if small else size_problem(item)


# --- the stored copy -----------------------------------------------------------------------------------------

_KEPT_WHEN_CUT = (
    "kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user", "impersonatedUser",
    "sourceIPs", "userAgent", "objectRef", "responseStatus", "annotations", "requestReceivedTimestamp",
    "stageTimestamp", "timestamp",
)  # fmt: skip
# When even the metadata is too large: characters kept of each string, entries of each list and object. The
# metadata of a valid event nests at most 4 levels (user.extra[key][i]), so the cut copy is under 400 KB of
# JSON (at worst 6 bytes per character): truncate_event's max_bytes must not be below that.
_CUT_STRING = 256
_CUT_ITEMS = 10


def _encoded_size(value: Any) -> int:
    try:
        return len(orjson.dumps(value))
    except TypeError:  # an integer beyond 64 bits (decoded by the json module): the slow encoder takes it
        return len(json.dumps(value, ensure_ascii=False).encode())


def _cut(value: Any) -> Any:
    """A copy with strings, lists and objects cut short; level by level, without recursion."""
    root: list[Any] = [None]
    pending: list[tuple[Any, Any, Any]] = [(value, root, 0)]  # (source, parent, key in parent)
    while pending:
        source, parent, key = pending.pop()
        if type(source) is str:
            parent[key] = source[:_CUT_STRING]
        elif type(source) is dict:
            copy: dict[str, Any] = {}
            parent[key] = copy
            for k, v in list(source.items())[:_CUT_ITEMS]:
                pending.append((v, copy, str(k)[:_CUT_STRING]))
        elif type(source) is list:
            items: list[Any] = [None] * min(len(source), _CUT_ITEMS)
            parent[key] = items
            pending.extend((v, items, i) for i, v in enumerate(source[:_CUT_ITEMS]))
        else:
            parent[key] = source
    return root[0]


def truncate_event(raw: Mapping[str, Any], max_bytes: int = MAX_STORED_EVENT_BYTES) -> dict[str, Any]:
    """An event whose JSON fits in `max_bytes`, for storage: the event itself if it fits; else, as the
    apiserver's truncating audit backends do, without requestObject and responseObject; if that is still too
    large, only the metadata fields, with strings, lists and objects cut short (the metadata of an event
    within the limits is bounded: the responseStatus is left with its code). A cut copy carries the annotation
    `auditwatch.io/truncated: "true"`. `raw` must be within MAX_EVENT_DEPTH; it is not modified.
    """
    event = dict(raw)
    if _encoded_size(event) <= max_bytes:
        return event
    event.pop("requestObject", None)
    event.pop("responseObject", None)
    annotations = event.get("annotations")
    marked = {**(annotations if isinstance(annotations, dict) else {}), TRUNCATED_ANNOTATION: "true"}
    event["annotations"] = marked
    if _encoded_size(event) <= max_bytes:
        return event
    status = event.get("responseStatus")
    if isinstance(status, dict):
        event["responseStatus"] = {"code": status["code"]} if "code" in status else {}
    kept = {key: _cut(event[key]) for key in _KEPT_WHEN_CUT if key in event}
    kept["annotations"] = {**_cut(marked), TRUNCATED_ANNOTATION: "true"}
    return kept


# --- the alert's own fields ----------------------------------------------------------------------------------

# An alert copies values of its event into columns, its message and details (and so into notifications): each
# is cut once per alert, not per event. The apiserver bounds a name (253) and a namespace (63) but not a
# username, a user agent or a client-chosen auditID; PostgreSQL refuses a btree index entry over 2704 bytes, and
# alerts.user_name and alert_groups.group_key are indexed.
MAX_ALERT_FIELD_BYTES = 2048  # a column taken from the event (user, name, user agent...), as UTF-8
MAX_ALERT_TEXT_BYTES = 8192  # the message, and each string of the details (a Falco output, a command)
MAX_ALERT_ITEMS = 256  # entries kept of a list (groups, source IPs, an argv) or of an object in the details
MAX_GROUP_KEY_BYTES = 1024  # the group key: beyond it, a prefix and a digest of the whole (never shown)
_TRUNCATED_TEXT = "…<truncated {} bytes>"


def cap_text(text: str, max_bytes: int = MAX_ALERT_FIELD_BYTES) -> str:
    """`text` if its UTF-8 fits in `max_bytes`, else the longest prefix that fits with a visible mark of what
    was cut (`…<truncated N bytes>`, N counting UTF-8 bytes of the original)."""
    if len(text) * 4 <= max_bytes:  # UTF-8 takes at most 4 bytes a character: most values are not encoded
        return text
    data = text.encode("utf-8", "surrogatepass")  # a lone surrogate (json module's decoding) is dropped below
    if len(data) <= max_bytes:
        return text
    room = max_bytes - len(_TRUNCATED_TEXT.format(len(data)).encode())
    kept = data[:room].decode("utf-8", "ignore")  # a character cut in two is dropped
    return kept + _TRUNCATED_TEXT.format(len(data) - len(kept.encode()))


def cap_items(values: Sequence[str], clean: Callable[[str], str]) -> tuple[str, ...]:
    """At most MAX_ALERT_ITEMS of the strings, each `clean`ed (only those kept) and capped; a last entry then
    says how many were left out."""
    kept = tuple(cap_text(clean(v)) for v in values[:MAX_ALERT_ITEMS])
    if len(values) > MAX_ALERT_ITEMS:
        kept += (f"…<truncated {len(values) - MAX_ALERT_ITEMS} more>",)
    return kept


def cap_strings(value: Any, max_bytes: int = MAX_ALERT_TEXT_BYTES) -> Any:
    """A copy of JSON-like `value` with every string (keys too) capped and at most MAX_ALERT_ITEMS entries of
    every list and object (a last entry then says how many were left out); level by level, no recursion."""
    root: list[Any] = [None]
    pending: list[tuple[Any, Any, Any]] = [(value, root, 0)]  # (source, parent, key in parent)
    while pending:
        source, parent, key = pending.pop()
        if type(source) is str:
            parent[key] = cap_text(source, max_bytes)
        elif isinstance(source, Mapping):
            copy: dict[Any, Any] = {}
            parent[key] = copy
            for k, v in list(source.items())[:MAX_ALERT_ITEMS]:
                capped = cap_text(k, max_bytes) if type(k) is str else k
                copy[capped] = None  # the keys in their order: the values are filled in later, last first
                pending.append((v, copy, capped))
            if len(source) > MAX_ALERT_ITEMS:
                copy["…"] = f"<truncated {len(source) - MAX_ALERT_ITEMS} more>"
        elif type(source) is list or type(source) is tuple:
            items: list[Any] = [None] * min(len(source), MAX_ALERT_ITEMS)
            parent[key] = items
            pending.extend((v, items, i) for i, v in enumerate(source[:MAX_ALERT_ITEMS]))
            if len(source) > MAX_ALERT_ITEMS:
                items.append(f"…<truncated {len(source) - MAX_ALERT_ITEMS} more>")
        else:
            parent[key] = source
    return root[0]


def cap_key(key: str, max_bytes: int = MAX_GROUP_KEY_BYTES) -> str:
    """A group key within `max_bytes` of UTF-8: the key itself, or a prefix and a digest of the whole, so that
    keys that differ only past the cut stay apart."""
    if len(key) * 4 <= max_bytes:
        return key
    data = key.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return key
    return data[: max_bytes - 33].decode("utf-8", "ignore") + "~" + hashlib.sha256(data).hexdigest()[:32]
