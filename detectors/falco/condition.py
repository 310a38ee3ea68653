"""Falco conditions compiled: an expanded condition tree becomes nested Python closures over an `AuditEvent`,
so evaluating a rule is a handful of calls. Also the index hints: which values a condition requires.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Callable
from typing import Any

from detectors import patterns
from detectors.events import AuditEvent
from detectors.falco.fields import resolve
from detectors.falco.syntax import (
    LIST_FIELD_OPS,
    LIST_RHS_OPS,
    OPERATORS,
    UNSUPPORTED_OPS,
    And,
    ConditionError,
    FieldRef,
    Not,
    Or,
    XCheck,
)
from detectors.falco.values import FieldError, Value

Cond = Callable[[AuditEvent], bool]
Getter = Callable[[AuditEvent], Value]
PATTERN_OPS = frozenset({"glob", "iglob", "regex"})


def _transform(name: str, v: str) -> str:
    if name == "tolower":
        return v.lower()
    if name == "toupper":
        return v.upper()
    if name == "basename":
        return posixpath.basename(v)
    if name == "b64":
        try:
            return base64.b64decode(v, validate=False).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return ""
    return str(len(v))


def field_getter(ref: FieldRef) -> tuple[Getter, bool]:
    """(getter over an event, is a list value) for a field reference, with per-event caching of costly ones."""
    try:
        extractor, is_list, cost = resolve(ref.name, ref.arg)
    except FieldError as exc:
        raise ConditionError(str(exc)) from None
    getter: Getter
    if cost >= 2:
        key = "falco:" + (ref.name if ref.arg is None else f"{ref.name}[{ref.arg}]")

        def cached(ev: AuditEvent) -> Value:
            cache = ev.cache
            if key in cache:
                v: Value = cache[key]
                return v
            v = extractor(ev.raw)
            cache[key] = v
            return v

        getter = cached
    else:

        def direct(ev: AuditEvent) -> Value:
            return extractor(ev.raw)

        getter = direct
    for t in ref.transformers:
        getter, is_list = _wrap_transformer(getter, is_list, t)
    return getter, is_list


def _wrap_transformer(inner: Getter, is_list: bool, name: str) -> tuple[Getter, bool]:
    if name == "len":

        def length(ev: AuditEvent) -> Value:
            v = inner(ev)
            return None if v is None else str(len(v))

        return length, False

    def each(ev: AuditEvent) -> Value:
        v = inner(ev)
        if v is None:
            return None
        if isinstance(v, list):
            return [_transform(name, x) for x in v]
        return _transform(name, v)

    return each, is_list


def _pmatch(paths: tuple[str, ...]) -> Callable[[str], bool]:
    prefixes = tuple(p.rstrip("/") + "/" for p in paths)
    exact = frozenset(p.rstrip("/") or "/" for p in paths)

    def match(v: str) -> bool:
        return v in exact or v.startswith(prefixes)

    return match


def _scalar_test(op: str, lit: str) -> Callable[[str], bool]:
    if op in ("=", "=="):
        return lit.__eq__
    if op == "!=":
        return lit.__ne__
    if op == "<":
        return lambda v: v < lit
    if op == "<=":
        return lambda v: v <= lit
    if op == ">":
        return lambda v: v > lit
    if op == ">=":
        return lambda v: v >= lit
    if op == "contains":
        return lambda v: lit in v
    if op == "icontains":
        low = lit.lower()
        return lambda v: low in v.lower()
    if op == "startswith":
        return lambda v: v.startswith(lit)
    if op == "endswith":
        return lambda v: v.endswith(lit)
    try:
        if op in ("glob", "iglob"):
            return patterns.glob([lit], ignore_case=op == "iglob")
        if op == "regex":  # Falco's regex is RE2 too, and matches the whole value
            return patterns.matcher([lit], anchor=patterns.Anchor.WHOLE)
    except patterns.PatternError as exc:
        raise ConditionError(str(exc)) from None
    raise ConditionError(f"unknown operator {op!r}")


def _compile_check(check: XCheck) -> Cond:
    op = check.op
    if op in UNSUPPORTED_OPS:
        raise ConditionError(f"operator {op!r} (byte matching) is not supported on k8s_audit fields")
    if op not in OPERATORS:
        raise ConditionError(f"unknown operator {op!r}")
    get, is_list = field_getter(check.field)
    if is_list and op not in LIST_FIELD_OPS:
        raise ConditionError(
            f"operator {op!r} cannot be used on list field {check.field.key()!r} (use in, intersects or exists)"
        )
    if op == "exists":

        def exists(ev: AuditEvent) -> bool:
            return get(ev) is not None

        return exists
    value = check.value
    if isinstance(value, FieldRef):
        if op in LIST_RHS_OPS or op in PATTERN_OPS:  # a pattern from the event would be compiled per event
            raise ConditionError(f"val() cannot be used with {op!r}")
        other, other_is_list = field_getter(value)
        if other_is_list:
            raise ConditionError(f"val() of a list field {value.key()!r} is not supported")

        def against(ev: AuditEvent) -> bool:
            v = get(ev)
            w = other(ev)
            return v is not None and w is not None and _scalar_test(op, w)(v)  # type: ignore[arg-type]

        return against
    if isinstance(value, tuple):
        return _compile_list_check(check, get, is_list, value)
    if op in LIST_RHS_OPS:
        raise ConditionError(f"operator {op!r} needs a list")
    lit = value if isinstance(value, str) else ""
    if op in ("=", "=="):

        def eq(ev: AuditEvent) -> bool:
            return get(ev) == lit

        return eq
    test = _scalar_test(op, lit)

    def cmp(ev: AuditEvent) -> bool:
        v = get(ev)
        return v is not None and test(v)  # type: ignore[arg-type]

    return cmp


def _compile_list_check(check: XCheck, get: Getter, is_list: bool, items: tuple[str, ...]) -> Cond:
    """A check against a list of values: `in`, `intersects`, `pmatch`."""
    if check.op == "pmatch":
        if is_list:
            raise ConditionError(f"operator 'pmatch' cannot be used on list field {check.field.key()!r}")
        pm = _pmatch(items)

        def pmatch(ev: AuditEvent) -> bool:
            v = get(ev)
            return v is not None and pm(v)  # type: ignore[arg-type]

        return pmatch
    members = frozenset(items)
    if is_list:
        if check.op == "in":

            def all_in(ev: AuditEvent) -> bool:
                v = get(ev)
                return v is not None and members.issuperset(v)

            return all_in

        def any_in(ev: AuditEvent) -> bool:
            v = get(ev)
            return v is not None and not members.isdisjoint(v)

        return any_in
    if len(members) == 1:
        (only,) = members

        def eq_one(ev: AuditEvent) -> bool:
            return get(ev) == only

        return eq_one

    def one_of(ev: AuditEvent) -> bool:
        return get(ev) in members

    return one_of


def _and(fs: list[Cond]) -> Cond:
    if len(fs) == 1:
        return fs[0]
    a, b = fs[0], _and(fs[1:])

    def both(ev: AuditEvent) -> bool:
        return a(ev) and b(ev)

    return both


def _or(fs: list[Cond]) -> Cond:
    if len(fs) == 1:
        return fs[0]
    a, b = fs[0], _or(fs[1:])

    def either(ev: AuditEvent) -> bool:
        return a(ev) or b(ev)

    return either


def compile_condition(node: Any) -> Cond:
    """Expanded tree -> one closure. Missing fields make every check false; `not` then makes it true."""
    if isinstance(node, XCheck):
        return _compile_check(node)
    if isinstance(node, Not):
        inner = compile_condition(node.item)

        def negate(ev: AuditEvent) -> bool:
            return not inner(ev)

        return negate
    if isinstance(node, And):
        return _and([compile_condition(i) for i in node.items])
    if isinstance(node, Or):
        return _or([compile_condition(i) for i in node.items])
    raise ConditionError(f"cannot compile {node!r}")


def required_values(node: Any, keys: frozenset[tuple[str, str | None]]) -> frozenset[str] | None:
    """The values a scalar field (named by any of `keys`) must have for the condition to hold; None = any.

    Sound for indexing: only positive positions count (`not` gives None), AND intersects, OR unites.
    """
    if isinstance(node, XCheck):
        ref = node.field
        if ref.transformers or (ref.name, ref.arg) not in keys:
            return None
        if node.op in ("=", "==") and isinstance(node.value, str):
            return frozenset({node.value})
        if node.op in ("in", "intersects") and isinstance(node.value, tuple):
            return frozenset(node.value)
        return None
    if isinstance(node, And):
        found: frozenset[str] | None = None
        for item in node.items:
            r = required_values(item, keys)
            if r is not None:
                found = r if found is None else found & r
        return found
    if isinstance(node, Or):
        union: set[str] = set()
        for item in node.items:
            r = required_values(item, keys)
            if r is None:
                return None
            union |= r
        return frozenset(union)
    return None
