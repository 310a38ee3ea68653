"""Inputs for the fuzz suite, made from the real events of tests/data: a value swapped for one of another JSON
type at any field path, extreme timestamps, deep nesting, huge strings, credential canaries planted in the
shapes the redaction knows, text-level damage (encodings, NULs, lone surrogates, duplicate keys, big numbers),
and `batch_item`, which draws one item of a webhook batch or an archive: valid, or poison of one of these kinds.
"""

from __future__ import annotations

import copy
import gzip
import itertools
import re
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from hypothesis import strategies as st

from detectors.limits import MAX_EVENT_DEPTH
from tests.support.credential_canaries import BASIC, CANARIES, JWT, PEM_BODY
from tests.support.paths import ROOT

# --- the real events ---------------------------------------------------------------------------------------


@cache
def _real_events() -> tuple[bytes, ...]:
    """tests/data's events as JSON texts: the scenario, and the kube-apiserver's own log of the e2e test."""
    scenario = (ROOT / "tests/data/scenario.jsonl").read_bytes().splitlines()
    e2e = gzip.decompress((ROOT / "tests/data/kube-e2e/audit.jsonl.gz").read_bytes()).splitlines()
    return tuple(line for line in [*scenario, *e2e] if line.strip())


def real_event(index: int) -> dict[str, Any]:
    """A fresh copy of the index-th real event (modulo their number)."""
    texts = _real_events()
    event: dict[str, Any] = orjson.loads(texts[index % len(texts)])
    return event


def real_event_count() -> int:
    return len(_real_events())


Path_ = tuple[str | int, ...]


@cache
def _paths_of(index: int) -> tuple[Path_, ...]:
    """Every field path of a real event (objects' keys and lists' indexes), parents before children."""
    out: list[Path_] = []
    pending: list[tuple[Path_, Any]] = [((), real_event(index))]
    while pending:
        path, value = pending.pop(0)
        if path:
            out.append(path)
        if isinstance(value, dict):
            pending.extend(((*path, k), v) for k, v in value.items())
        elif isinstance(value, list):
            pending.extend(((*path, i), v) for i, v in enumerate(value))
    return tuple(out)


def get_at(doc: Any, path: Path_) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def set_at(doc: Any, path: Path_, value: Any) -> None:
    get_at(doc, path[:-1])[path[-1]] = value


# --- values ------------------------------------------------------------------------------------------------

JSON_TYPES = ("null", "bool", "int", "float", "string", "list", "object")
_BIG_INTS = [2**31, -(2**31) - 1, 2**53 + 1, 2**63 - 1, -(2**63)]


def json_type_of(value: Any) -> str:
    if value is None:
        return "null"
    types = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}
    return types.get(type(value), "string")  # YAML's dates and times are strings to a rule file's reader


@st.composite
def value_of_type(draw: st.DrawFn, kind: str, old: Any = None) -> Any:
    """A JSON value of the given type; lists and objects may hold the value they replace."""
    if kind == "null":
        return None
    if kind == "bool":
        return draw(st.booleans())
    if kind == "int":
        return draw(st.one_of(st.integers(-1000, 1000), st.sampled_from(_BIG_INTS)))
    if kind == "float":
        return draw(st.one_of(st.sampled_from([0.5, -0.0, 1e308, -1e-308, 200.0, 3.0e9]),
                              st.floats(allow_nan=False, allow_infinity=False)))  # fmt: skip
    if kind == "string":
        return draw(st.one_of(st.sampled_from(["", "pods", "ResponseComplete", "audit.k8s.io/v1", "create", "x" * 300,
                                               "system:masters", "2026-11-20T10:00:00Z", "\u0000", "\ufeff", "é€😀"]),
                              st.text(max_size=20)))  # fmt: skip
    inner = draw(st.sampled_from([old, "pods", 1, None, {"a": 1}, [], ["pods"]]))
    if kind == "list":
        return draw(st.sampled_from([[], [inner], [inner, inner], [[inner]]]))
    return draw(st.sampled_from([{}, {"k": inner}, {"resource": inner, "name": "x"}, {"": inner}]))


@st.composite
def swapped(draw: st.DrawFn, event: dict[str, Any], index: int) -> dict[str, Any]:
    """The event with the value at one of its field paths swapped for a value of another JSON type."""
    paths = _paths_of(index)
    path = paths[draw(st.integers(0, len(paths) - 1))]
    old = get_at(event, path)
    kind = draw(st.sampled_from([t for t in JSON_TYPES if t != json_type_of(old)]))
    set_at(event, path, draw(value_of_type(kind, old)))
    return event


TIME_FIELDS = ("stageTimestamp", "requestReceivedTimestamp", "timestamp")


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """RFC 3339 times and near misses: years 1 to 9999 (and the edges of 1970 and 2200), every zone offset
    (none at all, lower case), leap seconds, nanoseconds and longer fractions, other ISO 8601 shapes."""
    year = draw(st.one_of(st.sampled_from([1, 2, 1969, 1970, 2026, 2199, 2200, 9999]), st.integers(1, 9999)))
    month, day = draw(st.integers(1, 12)), draw(st.sampled_from([1, 28, 29, 30, 31]))
    hour, minute = draw(st.sampled_from([0, 12, 23, 24])), draw(st.sampled_from([0, 59, 60]))
    second = draw(st.sampled_from([0, 30, 59, 60, 61]))
    fraction = draw(st.sampled_from(["", ".1", ".123456", ".123456789", ".1234567890123", ".", ".999999999"]))
    zone = draw(st.sampled_from(["Z", "z", "", "+00:00", "+14:00", "-14:00", "+23:59", "-23:59", "+24:00",
                                 "+0530", "+05", "-00:00"]))  # fmt: skip
    sep = draw(st.sampled_from(["T", "T", "T", " ", "t"]))
    return f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}:{second:02d}{fraction}{zone}"


DEEP = "<fuzz: nested here>"  # stands for a deep value in an event until it is encoded (`with_deep_values`)


def nested_text(depth: int) -> bytes:
    """JSON of objects and lists alternating, `depth` levels deep around a leaf (orjson.dumps stops at 254)."""
    opening = b"".join(b"[" if i % 2 else b'{"k":' for i in reversed(range(depth)))
    closing = b"".join(b"]" if i % 2 else b"}" for i in range(depth))
    return opening + b"1" + closing


def with_deep_values(text: bytes, depth: int) -> bytes:
    """An event's JSON with each DEEP placeholder replaced by a value `depth` levels deep."""
    return text.replace(orjson.dumps(DEEP), nested_text(depth))


# --- credential canaries -----------------------------------------------------------------------------------
# Each plants a canary of tests/support/credential_canaries.py in a shape the redaction knows wherever it is:
# text patterns (in a string), or a credential-named key (in an object), or a name/value pair (in a list).

CANARY_TEXTS = {
    "ua-bearer": f"Bearer {CANARIES['ua-bearer']}",
    "basic": f"Authorization: Basic {BASIC}",
    "jwt": f"id={JWT}",
    "uri-token": f"token={CANARIES['uri-token']}",
    "exec-flag": f"--password {CANARIES['exec-flag']}",
    "cookie": f"Cookie: session={CANARIES['cookie']}",
    "userinfo": f"postgres://app:{CANARIES['userinfo']}@db.shop:5432/orders",
    "pem": f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----",
    "kubeconfig-key": f"client-key-data: {CANARIES['kubeconfig-key']}",
}
CANARY_KEYS: dict[str, tuple[str, Any]] = {
    "x-api-key": ("X-Api-Key", CANARIES["x-api-key"]),
    "header-list": ("Authorization", [f"Basic {CANARIES['header-list']}"]),
    "password-object": ("password", {"value": CANARIES["password-object"]}),
    "number": ("api_key", int(CANARIES["number"])),
    "env-aws": ("AWS_SECRET_ACCESS_KEY", CANARIES["env-aws"]),
}
CANARY_PAIRS = {"env-db-password": {"name": "DB_PASSWORD", "value": CANARIES["env-db-password"]},
                "probe-header": {"name": "X-Api-Key", "value": CANARIES["probe-header"]}}  # fmt: skip
# What must never be found in what is stored or answered (the secret part of each planted form)
PLANTED_SECRETS = {name: CANARIES[name] for name in [*CANARY_TEXTS, *CANARY_KEYS, *CANARY_PAIRS] if name != "basic"} | {
    "basic": BASIC,
    "jwt": JWT.split(".")[1],
}


def leaks(text: str | bytes) -> list[str]:
    """The planted canaries found in `text`."""
    data = text.encode(errors="surrogatepass") if isinstance(text, str) else text
    return [name for name, secret in PLANTED_SECRETS.items() if secret.encode() in data]


def _containers(doc: Any, below: Path_ = ()) -> tuple[list[Path_], list[Path_], list[Path_]]:
    """Paths (under `below`) of the strings, objects and lists of a document."""
    strings: list[Path_] = []
    objects: list[Path_] = []
    lists: list[Path_] = []
    pending: list[tuple[Path_, Any]] = [(below, get_at(doc, below))]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            strings.append(path)
        elif isinstance(value, dict):
            objects.append(path)
            pending.extend(((*path, k), v) for k, v in value.items())
        elif isinstance(value, list):
            lists.append(path)
            pending.extend(((*path, i), v) for i, v in enumerate(value))
    return strings, objects, lists


@st.composite
def planted(draw: st.DrawFn, event: dict[str, Any], *, anywhere: bool) -> list[str]:
    """Plant one to three canaries in the event; `anywhere` false keeps a valid event valid (only its free-form
    parts: request and response bodies, the user agent, the URI's query, annotation values). Returns their names."""
    names: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        roots: list[Path_] = [()] if anywhere else [(k,) for k in ("requestObject", "responseObject") if k in event]
        strings, objects, lists = [], [], []
        for root in roots:
            s, o, li = _containers(event, root)
            strings += s if root else [p for p in s if p]
            objects += o
            lists += li
        choice = draw(st.sampled_from(["text", "key", "pair", "ua", "uri", "annotation"]))
        if choice == "ua" or (choice == "text" and not strings):
            name = draw(st.sampled_from(list(CANARY_TEXTS)))
            event["userAgent"] = f"{event.get('userAgent') if isinstance(event.get('userAgent'), str) else ''} " \
                                 f"{CANARY_TEXTS[name]}"  # fmt: skip
        elif choice == "uri" and isinstance(event.get("requestURI"), str):
            name = draw(st.sampled_from(["uri-token", "jwt"]))
            sep = "&" if "?" in event["requestURI"] else "?"
            event["requestURI"] += sep + CANARY_TEXTS[name].replace(" ", "")
        elif choice == "annotation" and isinstance(event.get("annotations"), dict):
            name = draw(st.sampled_from(list(CANARY_TEXTS)))
            event["annotations"]["note.example.com/forwarded"] = CANARY_TEXTS[name]
        elif choice == "text" and strings:
            name = draw(st.sampled_from(list(CANARY_TEXTS)))
            path = draw(st.sampled_from(strings))
            set_at(event, path, f"{get_at(event, path)} {CANARY_TEXTS[name]}")
        elif choice == "pair" and lists:
            name = draw(st.sampled_from(list(CANARY_PAIRS)))
            get_at(event, draw(st.sampled_from(lists))).append(copy.deepcopy(CANARY_PAIRS[name]))
        elif objects:
            name = draw(st.sampled_from(list(CANARY_KEYS)))
            key, value = CANARY_KEYS[name]
            get_at(event, draw(st.sampled_from(objects)))[key] = copy.deepcopy(value)
        else:
            continue
        names.append(name)
    return names


def offset(draw: st.DrawFn, size: int) -> int:
    """A place in a text of `size` bytes, drawn as a proportion: the same draw gives the same place when the text's
    length changes between runs (auditIDs are new each run; a gzip of them is not always as long)."""
    return draw(st.integers(0, 10_000)) * size // 10_000


# --- text-level damage -------------------------------------------------------------------------------------

TEXT_DAMAGE = ("duplicate-key", "big-number", "nul-escape", "lone-surrogate", "invalid-utf8", "raw-nul", "bom",
               "overlong-utf8", "cut")  # fmt: skip
# what leaves the text valid JSON (the item is then judged by its content) and what makes it invalid JSON
JSON_KEEPING = frozenset({"duplicate-key", "big-number", "nul-escape"})


@st.composite
def damaged_text(draw: st.DrawFn, text: bytes, how: str) -> bytes:
    """`text` (the JSON of an object) damaged in one way, at a drawn place."""
    # a place just after an opening quote of a string value or key
    quotes = [m.start() for m in itertools.islice(re.finditer(b'"', text), 2000)] or [0]
    at = draw(st.sampled_from(quotes)) + 1
    if how == "duplicate-key":
        key = draw(st.sampled_from([b"auditID", b"stage", b"stageTimestamp", b"objectRef", b"verb", b"user"]))
        value = draw(st.sampled_from([b'"dup"', b"null", b"[1]", b'{"resource":"pods"}', b"7"]))
        first = draw(st.booleans())
        return text[:1] + b'"' + key + b'":' + value + b"," + text[1:] if first else \
            text[:-1] + b',"' + key + b'":' + value + b"}"  # fmt: skip
    if how == "big-number":
        number = draw(st.sampled_from([b"123456789012345678901234567890", b"1e400", b"-1e400", b"1e-400",
                                       b"18446744073709551616", b"9223372036854775808", b"-9223372036854775809",
                                       b"0.1e999999"]))  # fmt: skip
        target = draw(st.sampled_from([b'"code":', b'"auditID":', b'"stage":', b'"stageTimestamp":', b'"verb":']))
        start = text.find(target)
        if start < 0:
            return text[:-1] + b',"n":' + number + b"}"
        start += len(target)
        end = _value_end(text, start)
        return text[:start] + number + text[end:]
    insert = {
        "nul-escape": b"\\u0000",
        "lone-surrogate": draw(st.sampled_from([b"\\ud800", b"\\udfff", b"\\ud83d", b"\\udc00\\ud800"])),
        "invalid-utf8": draw(
            st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80", b"\xf8\x88\x80\x80\x80"])
        ),
        "raw-nul": b"\x00",
        "overlong-utf8": b"\xc0\xaf",
    }.get(how)
    if insert is not None:
        return text[:at] + insert + text[at:]
    if how == "bom":
        return b"\xef\xbb\xbf" + text
    return text[: 1 + offset(draw, len(text) - 2)]  # cut (not to nothing: items are joined by commas)


def _value_end(text: bytes, start: int) -> int:
    """The end of the JSON scalar or string that starts at `start` (good enough for the values targeted)."""
    if text[start : start + 1] == b'"':
        i = start + 1
        while i < len(text) and text[i : i + 1] != b'"':
            i += 2 if text[i : i + 1] == b"\\" else 1
        return i + 1
    i = start
    while i < len(text) and text[i : i + 1] not in (b",", b"}", b"]"):
        i += 1
    return i


def event_list_of(texts: list[bytes]) -> bytes:
    """An EventList around item texts, as the apiserver posts it."""
    return b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[' + b",".join(texts) + b"]}"


# --- items of a batch or an archive ------------------------------------------------------------------------

_serial = itertools.count()
_RUN = uuid.uuid4().hex[:8]


def unique(event: dict[str, Any]) -> dict[str, Any]:
    """The event with an auditID of its own (so that its alerts are new to the store)."""
    event["auditID"] = f"fuzz-{_RUN}-{next(_serial):08d}"
    return event


@dataclass(frozen=True)
class Item:
    """One generated item, as the JSON text put in a body or written as a line."""

    text: bytes
    valid: bool | None  # built to be valid (True), to be rejected (False), or for the oracle to judge (None)
    kind: str


VALID_TIMES = ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000001+14:00", "2199-12-31T23:59:59.999999999-14:00",
               "2026-11-20T10:00:00.123456789Z", "2026-11-20T23:59:59.999999+00:00", "2000-02-29T12:00:00-23:59"]  # fmt: skip
# characters: mostly small (cheap), now and then over 1 MiB (the stored copy's cap) or 7 MiB (the event limit)
HUGE = [1_000, 1_000, 1_000, 1_000, 70_000, 70_000, 300_000, 1_100_000, 7_400_000]
HUGE_VALID = HUGE[:-1]
JUNK: list[Any] = [0, -1, 1.5, "x", "", None, True, [], {}, [[[]]], {"kind": "Event"}, {"kind": "EventList", "items": []},
                   {"auditID": "a"}, {"kind": 7}, {"apiVersion": "v1", "kind": "Pod"}, ["pods"]]  # fmt: skip


@st.composite
def batch_item(draw: st.DrawFn) -> Item:
    """A valid real event (with in-range oddities and canaries), or one of the many kinds of poison."""
    kind = draw(st.sampled_from(["valid", "valid", "valid", "swapped", "swapped", "timestamp", "deep", "huge",
                                 "junk", "text", "label"]))  # fmt: skip
    index = draw(st.integers(0, real_event_count() - 1))
    event = unique(real_event(index))
    valid: bool | None = None
    depth = 0
    if kind == "valid":
        valid = True
        odd = draw(st.sampled_from(["none", "time", "deep", "huge", "canary", "canary"]))
        if odd == "time":
            event["stageTimestamp"] = event["requestReceivedTimestamp"] = draw(st.sampled_from(VALID_TIMES))
        elif odd == "deep":
            event["requestObject"] = DEEP
            depth = draw(st.integers(1, MAX_EVENT_DEPTH - 1))
        elif odd == "huge":
            event.setdefault("requestObject", {})["blob"] = draw(st.sampled_from(["x", "é", "😀"])) * draw(
                st.sampled_from(HUGE_VALID)
            )
        elif odd == "canary":
            draw(planted(event, anywhere=False))
    elif kind == "swapped":
        event = draw(swapped(event, index))
        if draw(st.booleans()):
            draw(planted(event, anywhere=True))
    elif kind == "timestamp":
        event[draw(st.sampled_from(TIME_FIELDS))] = draw(timestamps())
    elif kind == "deep":
        event[draw(st.sampled_from(["requestObject", "responseObject", "annotations", "user", "objectRef"]))] = DEEP
        depth = draw(st.integers(MAX_EVENT_DEPTH - 3, 1020))
    elif kind == "huge":
        event[draw(st.sampled_from(["requestObject", "userAgent", "requestURI", "auditID"]))] = \
            draw(st.sampled_from(["a", "\u0000", "é"])) * draw(st.sampled_from(HUGE))  # fmt: skip
    elif kind == "junk":
        return Item(orjson.dumps(draw(st.sampled_from(JUNK))), False, kind)
    elif kind == "label":  # a pod or deployment whose `app` label is a list: the user's rule type raises on it
        event.setdefault("objectRef", {})["resource"] = "deployments"
        event.update(verb="create", stage="ResponseComplete")
        event["requestObject"] = {"metadata": {"labels": {"app": ["web"]}}}
    text = with_deep_values(orjson.dumps(event), depth)
    if kind == "text":
        how = draw(st.sampled_from(TEXT_DAMAGE))
        text = draw(damaged_text(text, how))
        kind = f"text:{how}"
    return Item(text, valid, kind)
