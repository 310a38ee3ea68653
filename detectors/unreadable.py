"""Text that orjson cannot read: the reason given for it, and an EventList whose items are read one by one.

orjson refuses a whole body for one number beyond a double (`1e400`), one lone surrogate escape (`"\\ud800"`) or
one byte that is not UTF-8, each of which the apiserver passes on from a client: a PATCH's body is logged as it
came (`requestObject`), before anything parses it. Refusing the body would lose its every event to one client's
request, so a body that is an EventList as a whole (an object of `kind`, `apiVersion`, `metadata` that orjson
reads, and an `items` array) is cut into its items with Python's json module, which reads what orjson refuses: an
item orjson cannot read is rejected alone, with the reason its own text gives, and its payload is what Python's
json module makes of it (so that it is redacted as a structure, as any rejected item is). Anything else stays a
400.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

from detectors.limits import MAX_EVENT_DEPTH, loads_bounded

_TOO_DEEP = "depth limit exceeded"  # orjson's words for a text nested past its limit (1024 levels)


def utf8_problem(data: bytes | str) -> str | None:
    """Where a text is not valid UTF-8 (orjson only says "surrogates not allowed ... (char 0)"), or None."""
    try:
        data.decode("utf-8") if isinstance(data, bytes) else data.encode("utf-8")
    except UnicodeError as exc:
        where = "byte" if isinstance(data, bytes) else "character"
        return f"invalid UTF-8 at {where} {exc.start}"  # type: ignore[attr-defined]
    return None


def json_problem(exc: orjson.JSONDecodeError, data: bytes | str) -> str:
    """The reason given for text that is not JSON: what and where (line, column, character), or the byte
    where it is not UTF-8."""
    if "UTF-8" in exc.msg:
        problem = utf8_problem(data)
        if problem is not None:
            return problem
    return f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An item of an EventList that orjson cannot read: why, and what is kept of it (None if nothing reads it)."""

    reason: str
    payload: Any


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
_ENVELOPE = frozenset({"kind", "apiVersion", "metadata"})  # an EventList's members besides its items


def _skip(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()  # type: ignore[union-attr]  # (it matches the empty string)


def _value_end(text: str, pos: int) -> int:
    """Where the JSON value at `pos` ends; ValueError if it is not one. Python's json module reads what orjson
    refuses: numbers beyond a double, lone surrogate escapes, and (the text decoded with surrogateescape) bytes
    that are not UTF-8. A value nested past its recursion limit (which orjson refuses too) ends where its
    brackets close: an item is rejected alone for its depth, as one within orjson's limit is."""
    try:
        return int(_DECODER.raw_decode(text, pos)[1])
    except RecursionError:
        return _bracketed_end(text, pos)


# a JSON string (escapes included), or a bracket: what matters to where an array or object ends
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_CLOSING = {"[": "]", "{": "}"}


def _bracketed_end(text: str, pos: int) -> int:
    """Where the array or object at `pos` ends, by its brackets outside strings; ValueError if they do not match.
    One pass, without recursion: the stack holds the closing brackets awaited."""
    awaited: list[str] = []
    for match in _STRING_OR_BRACKET.finditer(text, pos) if text[pos] in _CLOSING else ():
        token = match.group()
        if token in _CLOSING:
            awaited.append(_CLOSING[token])
        elif token[0] != '"':
            if not awaited or awaited.pop() != token:
                break
            if not awaited:
                return match.end()
    raise ValueError("not a JSON array or object")


def _split(body: bytes) -> tuple[list[tuple[str, bytes]], list[bytes]] | None:
    """The members of an EventList body (each value's text, in order, a key given twice twice) and its items'
    texts, exactly as received; None if the body is not one JSON object with an `items` array and nothing but
    the members an EventList has."""
    text = body.decode("utf-8", "surrogateescape")  # one character per byte that is not UTF-8: spans map back
    members: list[tuple[str, bytes]] = []
    items: list[bytes] | None = None
    try:
        pos = _skip(text, 0)
        if text[pos] != "{":
            return None
        pos = _skip(text, pos + 1)
        while text[pos] == '"':
            key, pos = _DECODER.raw_decode(text, pos)
            pos = _skip(text, pos)
            if (key not in _ENVELOPE and key != "items") or text[pos] != ":":
                return None
            pos = _skip(text, pos + 1)
            if key == "items":
                if text[pos] != "[":
                    return None
                items, pos = [], _skip(text, pos + 1)
                while text[pos] != "]":
                    end = _value_end(text, pos)
                    items.append(text[pos:end].encode("utf-8", "surrogateescape"))
                    pos = _skip(text, end)
                    if text[pos] == ",":
                        pos = _skip(text, pos + 1)
                    elif text[pos] != "]":
                        return None
                pos += 1
            else:
                end = _value_end(text, pos)
                members.append((key, text[pos:end].encode("utf-8", "surrogateescape")))
                pos = end
            pos = _skip(text, pos)
            if text[pos] == ",":
                pos = _skip(text, pos + 1)
                if text[pos] != '"':
                    return None
        if text[pos] != "}" or _skip(text, pos + 1) != len(text) or items is None:
            return None
    except (ValueError, RecursionError, IndexError):  # not JSON, nested past recursion, cut short
        return None
    return members, items


def _float(text: str) -> float | str:
    number = float(text)
    return number if math.isfinite(number) else text  # `1e400` kept as its text: JSON has no infinity


def _int(text: str) -> int | str:
    return int(text) if len(text) < 300 else text  # beyond a double: kept as its text


def _lenient(text: bytes) -> Any:
    """What can be read of an item orjson refused, as orjson would give it: bytes that are not UTF-8 and lone
    surrogates replaced, numbers beyond a double as their text; None if even that fails (nested too deep)."""
    try:
        value = json.loads(text.decode("utf-8", "replace"), parse_float=_float, parse_int=_int, parse_constant=str)
        return orjson.loads(json.dumps(value, ensure_ascii=False).encode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None


def read_items(body: bytes) -> dict[str, Any] | None:
    """The EventList in `body`, each item that orjson cannot read on its own an `Unreadable`; None when the body
    is not an EventList whose other members orjson reads (its 400 then stands)."""
    split = _split(body)
    if split is None:
        return None
    members, texts = split
    try:
        doc = {key: orjson.loads(value) for key, value in members}  # each checked; the last of a key counts
    except orjson.JSONDecodeError:
        return None
    if doc.get("kind") != "EventList":
        return None
    items: list[Any] = []
    for text in texts:
        try:
            items.append(loads_bounded(text)[0])
        except orjson.JSONDecodeError as exc:
            if exc.msg == _TOO_DEEP:  # nothing reads it: the limit is the reason
                items.append(Unreadable(f"nested deeper than {MAX_EVENT_DEPTH} levels", None))
            else:
                items.append(Unreadable(json_problem(exc, text), _lenient(text)))
    doc["items"] = items
    return doc
