"""Dotted field paths over audit events, compiled once and evaluated many times.

Syntax: `a.b.c`, `a[*].b` (every element), `a[0]` (one element), `annotations['k.io/x']` (a key with dots),
and virtual roots computed from the whole event (`$containers`, `$podSpecs`, ...: detectors/virtual_roots.py).
A key applied to a list applies to each element, and a final list value is flattened, so
`user.groups` or `requestObject.rules.verbs` yield their elements.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

from detectors.errors import DetectorError
from detectors.virtual_roots import SINGLE_VALUES, VIRTUAL_ROOTS, EventView


class PathError(DetectorError):
    """A field path that does not parse."""


class Each(Enum):
    """`[*]` in a field path: every element of a list."""

    EACH = "[*]"


EACH = Each.EACH
Step = str | int | Each  # a key, an index, or [*]
_TOKEN = re.compile(
    r"""\.?(?P<name>[A-Za-z0-9_\-]+)|\[(?P<each>\*)\]|\[(?P<index>-?\d+)\]|\[(?P<q>['"])(?P<key>.*?)(?P=q)\]"""
)


@dataclass(frozen=True, slots=True)
class CompiledPath:
    text: str
    values: Callable[[EventView], list[Any]]  # flattened, for conditions
    many: bool  # may yield several values (has [*] or a list-valued root)
    value: Callable[[EventView], Any]  # as stored (lists not flattened); the list of values if `many`
    keys: tuple[str, ...] | None = None  # plain dict keys from the event root, when the path is just that
    scalar: bool = False  # `value` is the only value there is, a string (or None for none): `$decision`, `$principal`


def _flatten(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, list):
            out.extend(x for x in v if x is not None)
        elif v is not None:
            out.append(v)
    return out


def _tokenize(text: str) -> list[Step]:
    tokens: list[Step] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos or (pos == 0 and text.startswith(".")):
            raise PathError(f"bad field path {text!r} at character {pos + 1}")
        if m.group("name") is not None:
            tokens.append(m.group("name"))
        elif m.group("each") is not None:
            tokens.append(EACH)
        elif m.group("index") is not None:
            tokens.append(int(m.group("index")))
        else:
            tokens.append(m.group("key"))
        pos = m.end()
    return tokens


def parse_path(text: str) -> tuple[str | None, list[Step]]:
    """A field path as (its virtual root's name, or None for the event itself; its steps); PathError says
    what is wrong with it."""
    if not isinstance(text, str) or not text.strip():
        raise PathError("empty field path")
    if not text.startswith("$"):
        return None, _tokenize(text)
    m = re.match(r"\$([A-Za-z]+)", text)
    name = m.group(1) if m else ""
    if name not in VIRTUAL_ROOTS:
        raise PathError(f"unknown virtual field ${name} (known: {', '.join('$' + k for k in VIRTUAL_ROOTS)})")
    rest = text[len(name) + 1 :]
    if rest.startswith("."):
        rest = rest[1:]
        if not rest:
            raise PathError(f"bad field path {text!r}: nothing after the dot")
    return name, _tokenize(rest) if rest else []


@lru_cache(maxsize=4096)
def compile_path(text: str) -> CompiledPath:
    """Parse a field path once (cached); PathError says what is wrong with it."""
    root, tokens = parse_path(text)
    root_fn: Callable[[EventView], list[Any]] | None = None
    many = False
    if root is not None:
        root_fn, many = VIRTUAL_ROOTS[root]
    many = many or any(t is EACH for t in tokens)

    keys = tuple(t for t in tokens if isinstance(t, str))
    if root_fn is None and len(keys) == len(tokens):
        return _compile_keys(text, keys, many)

    start = root_fn
    if start is not None and root is not None and not tokens and not many:
        # a single-value root alone ($decision, $principal, $exec): its list is the values (none is a list)
        only = start

        def first_of(event: EventView) -> Any:
            found = only(event)
            return found[0] if len(found) == 1 else found or None

        single = SINGLE_VALUES.get(root)
        return CompiledPath(text, only, many, first_of if single is None else single, scalar=single is not None)

    def walk(event: EventView) -> list[Any]:
        roots = start(event) if start is not None else [event.raw]
        return _walk(roots, tokens)

    def first(event: EventView) -> Any:
        found = walk(event)
        return found if many else (found[0] if len(found) == 1 else found or None)

    key, index = (tokens[0], tokens[1]) if len(tokens) == 2 else (None, None)
    if start is None and isinstance(key, str) and type(index) is int:  # `sourceIPs[-1]`, without the walk's lists

        def item(event: EventView) -> Any:
            items = event.raw.get(key)
            if not isinstance(items, list) or not -len(items) <= index < len(items):
                return None
            found = items[index]
            return first(event) if isinstance(found, list) else found

        return CompiledPath(text, walk, many, item)

    return CompiledPath(text, walk, many, first)


def _compile_keys(text: str, keys: tuple[str, ...], many: bool) -> CompiledPath:
    """A path of plain dict keys from the event root (no virtual root, index or [*]): the common case."""

    def simple(event: EventView) -> list[Any]:
        node: Any = event.raw
        for i, key in enumerate(keys):
            if isinstance(node, dict):
                node = node.get(key)
                if node is None:
                    return []
            elif isinstance(node, list):
                return _walk([node], keys[i:])
            else:
                return []
        if isinstance(node, list):
            return _flatten(node)
        return [node]

    # The hot path: most rule fields are one or two keys deep (verb, objectRef.resource).
    if len(keys) == 1:
        (k1,) = keys

        def simple(event: EventView) -> list[Any]:  # noqa: F811 - a faster equivalent
            value = event.raw.get(k1)
            if value is None:
                return []
            return _flatten(value) if type(value) is list else [value]

    elif len(keys) == 2:
        k1, k2 = keys
        general = simple

        def simple(event: EventView) -> list[Any]:  # noqa: F811 - a faster equivalent
            outer = event.raw.get(k1)
            if type(outer) is not dict:
                return general(event) if type(outer) is list else []
            value = outer.get(k2)
            if value is None:
                return []
            return _flatten(value) if type(value) is list else [value]

    def single(event: EventView) -> Any:
        node: Any = event.raw
        for key in keys:
            if not isinstance(node, dict):
                return simple(event) if isinstance(node, list) else None
            node = node.get(key)
        return node

    # The same for one or two keys through plain dicts (group_by and terms fields); anything else goes the long way.
    if len(keys) == 1:
        general_single = single

        def single(event: EventView) -> Any:  # noqa: F811 - a faster equivalent
            raw = event.raw
            return raw.get(k1) if type(raw) is dict else general_single(event)

    elif len(keys) == 2:
        general_single = single

        def single(event: EventView) -> Any:  # noqa: F811 - a faster equivalent
            raw = event.raw
            if type(raw) is dict:
                outer = raw.get(k1)
                if type(outer) is dict:
                    return outer.get(k2)
                if outer is None:
                    return None
            return general_single(event)

    return CompiledPath(text, simple, many, simple if many else single, keys)


def _walk(values: list[Any], tokens: tuple[Any, ...] | list[Any]) -> list[Any]:
    for tok in tokens:
        nxt: list[Any] = []
        for v in values:
            if tok is EACH:
                if isinstance(v, list):
                    nxt.extend(v)
            elif isinstance(tok, int):
                if isinstance(v, list) and -len(v) <= tok < len(v):
                    nxt.append(v[tok])
            elif isinstance(v, dict):
                if tok in v:
                    nxt.append(v[tok])
            elif isinstance(v, list):  # a key applied to a list applies to each element
                nxt.extend(x[tok] for x in v if isinstance(x, dict) and tok in x)
        values = nxt
        if not values:
            return []
    return _flatten(values)
