"""Compile a rule's `match:` mapping into a predicate over AuditEvent (see docs/rules.md)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from detectors import patterns
from detectors.errors import RuleError, RuleErrors, check_each, collect
from detectors.events import AuditEvent
from detectors.fieldpath import PathError, compile_path
from detectors.loading.yamlload import LocatedDict, LocatedList
from detectors.rules.condition_code import All, Among, AnyOf, Check, Cond, Member, Not, Prefixed, compiled
from detectors.rules.condition_code import Predicate as Predicate
from detectors.scope import KEY_PATHS, UNKNOWN, AllOf, KeyCondition, KeyTest, NotOf
from detectors.scope import AnyOf as KeyAnyOf

ValueTest = Callable[[Any], bool]


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps booleans apart from numbers (YAML `true` must not match JSON `1`)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _strings(value: Any, op: str, where: tuple[str, int]) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) for v in items):
        raise RuleError(f"operator {op!r} takes a string or a list of strings", path=where[0], line=where[1])
    return tuple(items)


def _number(value: Any, op: str, where: tuple[str, int]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RuleError(f"operator {op!r} takes a number", path=where[0], line=where[1])
    return float(value)


def _membership(expected: Sequence[Any]) -> ValueTest:
    strings = frozenset(v for v in expected if isinstance(v, str))
    others = tuple(v for v in expected if not isinstance(v, str))
    if not others:
        return lambda v: isinstance(v, str) and v in strings
    return lambda v: (isinstance(v, str) and v in strings) or any(_same(v, o) for o in others)


def _normalise_path(value: str) -> str:
    # normpath keeps a leading "//" (POSIX allows it); the kubelet does not care, so neither do we.
    return posixpath.normpath(re.sub(r"^/+", "/", value))


def _path_under(roots: tuple[str, ...]) -> ValueTest:
    exact = frozenset(_normalise_path(r) for r in roots)
    prefixes = tuple(_normalise_path(r).rstrip("/") + "/" for r in roots if _normalise_path(r) != "/")

    def test(v: Any) -> bool:
        if not isinstance(v, str) or not v.startswith("/"):
            return False
        norm = _normalise_path(v)
        return norm in exact or norm.startswith(prefixes)

    return test


def _value_test(op: str, arg: Any, where: tuple[str, int]) -> ValueTest:
    if op == "equals":
        if isinstance(arg, (dict, list)):
            raise RuleError("operator 'equals' takes a scalar", path=where[0], line=where[1])
        if isinstance(arg, str):  # the common case, and a str never equals a non-str
            return lambda v: v == arg
        return lambda v: _same(v, arg)
    if op == "in":
        if not isinstance(arg, list) or not arg:
            raise RuleError("operator 'in' takes a non-empty list", path=where[0], line=where[1])
        return _membership(arg)
    if op == "prefix":
        prefixes = _strings(arg, op, where)
        return lambda v: isinstance(v, str) and v.startswith(prefixes)
    if op == "suffix":
        suffixes = _strings(arg, op, where)
        return lambda v: isinstance(v, str) and v.endswith(suffixes)
    if op == "contains":
        needles = _strings(arg, op, where)
        return lambda v: isinstance(v, str) and any(n in v for n in needles)
    if op in ("regex", "not_regex"):
        try:
            found = patterns.matcher(_strings(arg, op, where))  # any of them, anywhere in the value
        except patterns.PatternError as exc:
            raise RuleError(str(exc), path=where[0], line=where[1]) from None
        if op == "not_regex":  # per value, like the other operators: some value that none of them matches
            return lambda v: isinstance(v, str) and not found(v)
        return lambda v: isinstance(v, str) and found(v)
    if op in ("gt", "gte", "lt", "lte"):
        bound = _number(arg, op, where)
        compare: Callable[[float, float], bool] = {
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
        }[op]
        return lambda v: not isinstance(v, bool) and isinstance(v, (int, float)) and compare(float(v), bound)
    if op == "path_under":
        roots = _strings(arg, op, where)
        if not all(r.startswith("/") for r in roots):
            raise RuleError("operator 'path_under' takes absolute paths", path=where[0], line=where[1])
        return _path_under(roots)
    raise RuleError(
        f"unknown operator {op!r} (known: equals, in, not_in, prefix, suffix, contains, regex, not_regex, "
        "exists, gt, gte, lt, lte, path_under, some)",
        path=where[0],
        line=where[1],
    )


def _some(condition: Any, where: tuple[str, int]) -> ValueTest:
    """`{some: cond}`: the value is an object that satisfies `cond`, whose paths are read from the object. On
    a list field, some element does: the tests of one rule of a Role hold together, not across its rules."""
    inner = compile_condition(condition, path=where[0], line=where[1])
    return lambda v: isinstance(v, dict) and inner(AuditEvent(v))


def _hashable_choices(spec: Any) -> frozenset[Any] | None:
    """The values of an equality or membership test, when they are all strings or ints (not bools)."""
    choices = spec if isinstance(spec, list) else [spec] if not isinstance(spec, dict) else None
    if isinstance(spec, dict) and set(spec) in ({"equals"}, {"in"}):
        arg = next(iter(spec.values()))
        choices = arg if isinstance(arg, list) else [arg]
    if not choices or not all(type(v) in (str, int) for v in choices):
        return None
    return frozenset(choices)


def _field_condition(path_text: str, spec: Any, where: tuple[str, int]) -> Cond:
    """One field's test: a `Member` for a value or list of values on a field one or two keys deep (the hot path,
    written out inline by `condition_code`), an `Among` for strings on any other, a `Prefixed` for a prefix test
    alone, else a `Check` of the general path."""
    try:
        path = compile_path(path_text)
    except PathError as exc:
        raise RuleError(str(exc), path=where[0], line=where[1]) from None
    choices = _hashable_choices(spec)
    if path.keys is not None and 1 <= len(path.keys) <= 2 and choices is not None:
        return Member(path.keys, choices)
    if choices is not None and all(type(c) is str for c in choices):
        scalar = path.value if path.scalar else None
        return Among(path.values, choices, path.keys, scalar)  # as `_membership` and `equals` test strings
    if isinstance(spec, dict) and list(spec) == ["prefix"]:
        op_where = (where[0], spec.line_of("prefix") if isinstance(spec, LocatedDict) else where[1])
        return Prefixed(path.values, _strings(spec["prefix"], "prefix", op_where), path.keys)  # as `_value_test`
    return Check(_field_predicate(path.values, path_text, spec, where))


def _field_predicate(
    getter: Callable[[AuditEvent], list[Any]], path_text: str, spec: Any, where: tuple[str, int]
) -> Predicate:
    """The general path: the operators of `spec` over the values `getter` reads."""
    tests: list[ValueTest] = []
    exists: bool | None = None
    not_in: ValueTest | None = None
    if isinstance(spec, dict):
        if not spec:
            raise RuleError(f"no operator given for {path_text!r}", path=where[0], line=where[1])
        tests, exists, not_in = _operators(spec, where)
    elif isinstance(spec, list):
        if not spec or any(isinstance(v, (dict, list)) for v in spec):
            raise RuleError(f"{path_text!r}: a list of values must be non-empty scalars", path=where[0], line=where[1])
        tests.append(_membership(spec))
    else:
        tests.append(_value_test("equals", spec, where))

    if len(tests) == 1 and exists is None and not_in is None:
        only = tests[0]

        def single(event: AuditEvent) -> bool:  # the hot path: one test, any value
            for value in getter(event):
                if only(value):
                    return True
            return False

        return single

    if not tests and not_in is None and exists is not None:  # `exists` alone

        def present(event: AuditEvent) -> bool:
            return bool(getter(event)) == exists

        return present

    def predicate(event: AuditEvent) -> bool:
        values = getter(event)
        if exists is not None and bool(values) != exists:
            return False
        if not_in is not None and (not values or any(not_in(v) for v in values)):
            return False
        # each operator must hold for some value of the field (any-semantics over list fields)
        return all(any(t(v) for v in values) for t in tests)

    return predicate


def _operators(spec: dict[str, Any], where: tuple[str, int]) -> tuple[list[ValueTest], bool | None, ValueTest | None]:
    """A field's operators: its value tests, `exists` and `not_in`. Each is checked apart, so that a rule's
    errors are all reported at once."""
    errors: list[RuleError] = []
    tests: list[ValueTest] = []
    exists: bool | None = None
    not_in: ValueTest | None = None
    for op, arg in spec.items():
        at = (where[0], spec.line_of(op) if isinstance(spec, LocatedDict) else where[1])
        if op == "exists":
            if isinstance(arg, bool):
                exists = arg
            else:
                errors.append(RuleError("operator 'exists' takes true or false", path=at[0], line=at[1]))
        elif op == "not_in":
            if isinstance(arg, list) and arg:
                not_in = _membership(arg)
            else:
                errors.append(RuleError("operator 'not_in' takes a non-empty list", path=at[0], line=at[1]))
        else:
            test = collect(errors, partial(_some, arg, at) if op == "some" else partial(_value_test, op, arg, at), None)
            if test is not None:
                tests.append(test)
    if errors:
        raise RuleErrors(errors)
    return tests, exists, not_in


def compile_condition(node: Any, *, path: str, line: int) -> Predicate:
    """Compile a condition mapping; every entry must hold."""
    return compiled(condition_tree(node, path=path, line=line), path)


def condition_tree(node: Any, *, path: str, line: int) -> Cond:
    """A condition mapping as a tree (`condition_code`); RuleErrors for a malformed one, with the errors of
    every key and branch (each is checked apart, so that a rule's errors are all reported at once)."""
    if not isinstance(node, dict) or not node:
        where = node.line if isinstance(node, (LocatedDict, LocatedList)) else line
        raise RuleError("a condition must be a non-empty mapping", path=path, line=where)
    lines = {key: node.line_of(key) if isinstance(node, LocatedDict) else line for key in node}
    return _all(tuple(check_each(partial(_part, key, value, path, lines[key]) for key, value in node.items())))


def _part(key: str, value: Any, path: str, key_line: int) -> Cond:
    """One key of a condition mapping: a combinator or a field's test."""
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise RuleError(f"{key!r} takes a non-empty list of conditions", path=path, line=key_line)
        lines = [value.line_of(i) if isinstance(value, LocatedList) else key_line for i in range(len(value))]
        subs = check_each(partial(condition_tree, item, path=path, line=lines[i]) for i, item in enumerate(value))
        return _all(tuple(subs)) if key == "all" else AnyOf(tuple(subs))
    if key == "not":
        return Not(condition_tree(value, path=path, line=key_line))
    return _field_condition(key, value, (path, key_line))


def _all(parts: tuple[Cond, ...]) -> Cond:
    return parts[0] if len(parts) == 1 else All(parts)


def key_condition(node: Any, *, path: str = "", line: int = 0) -> KeyCondition:
    """The condition (already compiled once, so valid) abstracted to the routing key (`detectors.scope`): its
    tests of key fields as they are, every other test unknown."""
    parts: list[KeyCondition] = []
    for key, value in node.items():
        if key in ("all", "any"):
            subs = tuple(key_condition(item, path=path, line=line) for item in value)
            parts.append(AllOf(subs) if key == "all" else KeyAnyOf(subs))
        elif key == "not":
            parts.append(NotOf(key_condition(value, path=path, line=line)))
        elif key in KEY_PATHS:
            parts.append(KeyTest(compiled(_field_condition(key, value, (path, line)), path)))
        else:
            parts.append(UNKNOWN)
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def index_values(node: Any, field: str) -> frozenset[str] | None:
    """Values a top-level condition requires `field` to take, for the pipeline's prefilter; None if any."""
    if not isinstance(node, dict):
        return None
    spec = node.get(field)
    if isinstance(spec, str):
        return frozenset({spec})
    if isinstance(spec, list) and spec and all(isinstance(v, str) for v in spec):
        return frozenset(spec)
    if isinstance(spec, dict) and set(spec) <= {"equals", "in"}:
        vals: set[str] = set()
        for arg in spec.values():
            for v in arg if isinstance(arg, list) else [arg]:
                if not isinstance(v, str):
                    return None
                vals.add(v)
        return frozenset(vals) if vals else None
    return None


def compile_match(node: LocatedDict, *, path: str) -> tuple[Predicate, frozenset[str] | None]:
    """A rule's `match:`: its predicate, and the resources it requires (the pipeline's index hint)."""
    match = node["match"]
    return compile_condition(match, path=path, line=node.line_of("match")), index_values(match, "objectRef.resource")
