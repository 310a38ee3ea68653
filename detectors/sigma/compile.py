"""Compile a pySigma condition tree into predicates over AuditEvent, and analyse it.

pySigma parses a rule and resolves its condition (`selection and not 1 of filter_*`) into a tree of
AND/OR/NOT over leaves `field = value`, where the value already carries its modifiers: `contains` is a
SigmaString with wildcards around it, `re` a SigmaRegularExpression, `cidr` a SigmaCIDRExpression,
`exists` a SigmaExists, `windash`/`base64offset` a SigmaExpansion, `all` an AND of leaves, `neq` a NOT.
This module turns that tree into closures, and computes for each node:

- `never`: why it can never match as written (empty when it can), so the loader can report such rules;
- `resources`: the `objectRef.resource` values every match has (the pipeline's index), or None;
- `fields`: the audit field paths it reads.

Values become tests in `detectors.sigma.values`; a list-valued field matches if any element does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    SigmaBool,
    SigmaCasedString,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaType,
    SpecialChars,
)

from detectors.events import AuditEvent
from detectors.eventschema import path_problem
from detectors.fieldpath import CompiledPath, PathError, compile_path
from detectors.sigma.fields import ENUM_FIELDS, INTEGER_FIELDS, audit_path
from detectors.sigma.values import SigmaCompileError, ValueTest, string_parts, string_test, text_of, value_test

Predicate = Callable[[AuditEvent], bool]
ConditionTree = ConditionItem | ConditionFieldEqualsValueExpression | ConditionValueExpression


@dataclass(frozen=True, slots=True)
class Never:
    """Why a node can never match: the Sigma field it is about, and the reason."""

    field: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Compiled:
    test: Predicate
    never: tuple[Never, ...] = ()
    resources: frozenset[str] | None = None
    fields: frozenset[str] = frozenset()
    # case-insensitive equality on one single-valued path: (path, lower-cased literals); lets OR merge into a set
    literals: tuple[str, frozenset[str]] | None = None


def _false(_event: AuditEvent) -> bool:
    return False


# ---------------------------------------------------------------- leaves


def _field_path(field: str) -> CompiledPath:
    try:
        return compile_path(audit_path(field))
    except PathError as exc:
        raise SigmaCompileError(f"field {field!r}: {exc}", field) from None


def _any_value(path: CompiledPath, test: ValueTest) -> Predicate:
    if path.many:
        values = path.values
        return lambda e: any(map(test, values(e)))
    single = path.value

    def predicate(event: AuditEvent) -> bool:
        v = single(event)
        if v is None:
            return False
        if type(v) is list:
            return any(test(x) for x in v if x is not None)
        return test(v)

    return predicate


def _never_for(field: str, path_text: str, value: SigmaType) -> tuple[Never, ...]:
    """Static reasons why `field = value` can never hold on an audit event."""
    absent_ok = isinstance(value, SigmaNull) or (isinstance(value, SigmaExists) and not value.exists)
    if not absent_ok and path_problem(path_text) is not None:
        return (Never(field, f"field {field!r} does not exist in Kubernetes audit events"),)
    if path_text in INTEGER_FIELDS and isinstance(value, (SigmaString, SigmaBool)):
        if isinstance(value, SigmaBool):
            return (Never(field, f"{field} is an integer in audit events; it never equals {bool(value.boolean)}"),)
        literal = "".join(p for p in value.s if isinstance(p, str))
        if any(not (c.isdigit() or c == "-") for c in literal):
            return (Never(field, f"{field} is an integer in audit events; it never equals {str(value)!r}"),)
    allowed = ENUM_FIELDS.get(path_text)
    if allowed is not None and type(value) is SigmaString and not value.contains_special():
        if str(value).lower() not in allowed:
            return (Never(field, f"{field} is never {str(value)!r} in audit events"),)
    return ()


def _leaf(field: str, value: SigmaType) -> Compiled:
    if isinstance(value, SigmaExpansion):
        return _or([_leaf(field, v) for v in value.values])
    path_text = audit_path(field)
    path = _field_path(field)
    fields = frozenset({path_text})
    never = _never_for(field, path_text, value)
    if isinstance(value, SigmaNull):
        values = path.values
        return Compiled(lambda e: not values(e), never, fields=fields)
    if isinstance(value, SigmaExists):
        values = path.values
        want = bool(value.exists)
        return Compiled(lambda e: bool(values(e)) is want, never, fields=fields)
    if isinstance(value, SigmaFieldReference):
        if value.starts_with or value.ends_with:
            raise SigmaCompileError("fieldref combined with startswith/endswith is not supported", field)
        other = _field_path(value.field)
        mine = path.values

        def same(event: AuditEvent) -> bool:
            left = {t.lower() for t in map(text_of, mine(event)) if t is not None}
            return any(t is not None and t.lower() in left for t in map(text_of, other.values(event)))

        return Compiled(same, never, fields=fields | {audit_path(value.field)})
    test, literal = value_test(value, field)
    resources: frozenset[str] | None = None
    literals: tuple[str, frozenset[str]] | None = None
    if literal is not None and not isinstance(value, SigmaCasedString):
        if not path.many:
            literals = (path_text, frozenset({literal}))
        if path_text == "objectRef.resource" and literal and isinstance(value, SigmaString):
            # resources are lower-case in Kubernetes; the index is exact, so only index lower-case values
            if "".join(p for p in value.s if isinstance(p, str)) == literal:
                resources = frozenset({literal})
    return Compiled(_any_value(path, test), never, resources, fields, literals)


def _scalars(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for v in node.values():
            yield from _scalars(v)
    elif isinstance(node, list):
        for v in node:
            yield from _scalars(v)
    elif node is not None:
        yield node


def _keyword(value: SigmaType) -> Compiled:
    """A value without a field: a full-text search over every scalar of the event (strings: substring)."""
    if isinstance(value, SigmaExpansion):
        return _or([_keyword(v) for v in value.values])
    if type(value) is SigmaString or isinstance(value, SigmaCasedString):
        parts = string_parts(value, None)
        if parts[:1] != [SpecialChars.WILDCARD_MULTI]:
            parts.insert(0, SpecialChars.WILDCARD_MULTI)
        if parts[-1:] != [SpecialChars.WILDCARD_MULTI]:
            parts.append(SpecialChars.WILDCARD_MULTI)
        test, _ = string_test(parts, isinstance(value, SigmaCasedString))
    elif isinstance(value, (SigmaNumber, SigmaBool, SigmaRegularExpression)):
        test, _ = value_test(value, None)
    else:
        raise SigmaCompileError(f"keyword values of type {type(value).__name__} are not supported")
    return Compiled(lambda e: any(map(test, _scalars(e.raw))))


# ---------------------------------------------------------------- combinators


def _all(tests: Sequence[Predicate]) -> Predicate:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda e: a(e) and b(e)
    if len(tests) == 3:
        a, b, c = tests
        return lambda e: a(e) and b(e) and c(e)
    items = tuple(tests)
    return lambda e: all(t(e) for t in items)


def _any(tests: Sequence[Predicate]) -> Predicate:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda e: a(e) or b(e)
    items = tuple(tests)
    return lambda e: any(t(e) for t in items)


def _set_test(path_text: str, allowed: frozenset[str]) -> Predicate:
    single = compile_path(path_text).value

    def member(event: AuditEvent) -> bool:
        v = single(event)
        if type(v) is str:
            return v.lower() in allowed
        if v is None:
            return False
        items = v if type(v) is list else [v]
        return any((t := text_of(x)) is not None and t.lower() in allowed for x in items)

    return member


def _and(children: Sequence[Compiled]) -> Compiled:
    never = next((c.never for c in children if c.never), ())
    pinned = [c.resources for c in children if c.resources is not None]
    resources = frozenset.intersection(*pinned) if pinned else None
    fields = frozenset().union(*(c.fields for c in children))
    return Compiled(_all([c.test for c in children]), never, resources, fields)


def _or(children: Sequence[Compiled]) -> Compiled:
    if len(children) == 1:
        return children[0]
    never = tuple(n for c in children for n in c.never) if all(c.never for c in children) else ()
    resources = (
        frozenset().union(*(c.resources for c in children if c.resources is not None))
        if all(c.resources is not None for c in children)
        else None
    )
    fields = frozenset().union(*(c.fields for c in children))
    # `verb: [create, update, patch]` is an OR of equalities on one field: test it as one set lookup
    paths = {c.literals[0] if c.literals else None for c in children}
    if len(paths) == 1 and None not in paths:
        (path_text,) = paths
        allowed = frozenset().union(*(c.literals[1] for c in children if c.literals))
        assert path_text is not None
        return Compiled(_set_test(path_text, allowed), never, resources, fields, (path_text, allowed))
    return Compiled(_any([c.test for c in children]), never, resources, fields)


def _not(child: Compiled) -> Compiled:
    test = child.test
    return Compiled(lambda e: not test(e), (), None, child.fields)


def compile_tree(node: ConditionTree | None) -> Compiled:
    """Compile one parsed (post-processed) Sigma condition."""
    if node is None:
        return Compiled(_false, (Never(None, "the condition selects nothing"),))
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _leaf(node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        return _keyword(node.value)
    args = [a for a in node.args if a is not None]
    if isinstance(node, ConditionNOT):
        if len(args) != 1:
            raise SigmaCompileError("'not' takes one operand")
        return _not(compile_tree(_as_tree(args[0])))
    if isinstance(node, ConditionAND):
        return _and([compile_tree(_as_tree(a)) for a in args])
    if isinstance(node, ConditionOR):
        return _or([compile_tree(_as_tree(a)) for a in args])
    raise SigmaCompileError(f"condition element {type(node).__name__} is not supported")


def _as_tree(arg: Any) -> ConditionTree:
    if isinstance(arg, (ConditionItem, ConditionFieldEqualsValueExpression, ConditionValueExpression)):
        return arg
    raise SigmaCompileError(f"condition element {type(arg).__name__} is not supported")


def compile_conditions(trees: Sequence[ConditionTree | None]) -> Compiled:
    """A rule's conditions (Sigma allows a list of them, ORed)."""
    return _or([compile_tree(t) for t in trees])
