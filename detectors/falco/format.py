"""The `falco` rule format: Falco k8s_audit rules files, loaded unmodified, compiled into one ruleset.

Files are collected first (`detectors.falco.collect`); `finish` then parses every macro and rule
condition, expands macros, lists and exceptions, and compiles each enabled k8s_audit rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from detectors.base import Detector
from detectors.errors import RuleError, RuleErrors
from detectors.eventschema import pointer_problem
from detectors.falco.collect import ExceptionItem, FalcoItems, RuleItem, Where
from detectors.falco.condition import compile_condition, required_values
from detectors.falco.ruleset import PRIORITIES, SOURCE, CompiledRule, FalcoRuleset, compile_output
from detectors.falco.syntax import (
    LIST_RHS_OPS,
    OPERATORS,
    And,
    ConditionError,
    FieldRef,
    Item,
    Node,
    Not,
    Or,
    XCheck,
    expand,
    expand_items,
    parse,
)
from detectors.falco.values import render
from detectors.loading.formats import LoadOptions

_MITRE = re.compile(r"^(T\d{4}(\.\d{3})?|mitre_.+)$")


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "rule"


class FalcoRules:
    """The `falco` rule format: Falco k8s_audit rules files, unmodified."""

    name: ClassVar[str] = "falco"

    def __init__(self) -> None:
        self.items = FalcoItems()

    @staticmethod
    def accepts(docs: list[Any]) -> bool:
        return len(docs) == 1 and isinstance(docs[0], list)

    def add(self, path: Path, docs: list[Any]) -> None:
        self.items.add(path, docs)

    def finish(self, options: LoadOptions) -> list[Detector]:
        errors: list[RuleError] = []
        macro_asts: dict[str, Node] = {}
        for name, macro in self.items.macros.items():
            try:
                macro_asts[name] = parse(macro.condition)
            except ConditionError as exc:
                errors.append(RuleError(f"macro {name!r}: {exc}", path=macro.where.path, line=macro.where.line))
        lists = {name: lst.items for name, lst in self.items.lists.items()}
        compiled: list[CompiledRule] = []
        ids: set[str] = set()
        for rule in self.items.rules.values():
            if rule.source != SOURCE:
                continue
            try:
                built = self._compile(rule, macro_asts, lists)
            except RuleError as exc:
                if rule.skip_if_unknown and "unknown field" in exc.message:
                    continue
                errors.append(exc)
                continue
            rid = "falco:" + slug(rule.name)
            n = 2
            while rid in ids:
                rid = f"falco:{slug(rule.name)}-{n}"
                n += 1
            ids.add(rid)
            built.rule_id = rid
            if rule.enabled:
                compiled.append(built)
        if errors:
            raise RuleErrors(errors)
        if not self.items.files:
            return []
        warnings = [w for built in compiled for w in built.warnings]
        return [FalcoRuleset(compiled, options.rule_matching, files=self.items.files, warnings=warnings)]

    def _compile(self, rule: RuleItem, macros: dict[str, Node], lists: dict[str, list[str]]) -> CompiledRule:
        def fail(exc: Exception, where: Where, what: str) -> RuleError:
            return RuleError(f"rule {rule.name!r}: {what}{exc}", path=where.path, line=where.line)

        parts: list[Node] = []
        for text, where in [(rule.condition, rule.cond_where)]:
            try:
                parts.append(parse(text))
            except ConditionError as exc:
                raise fail(exc, where, "condition: ") from None
        if rule.extra_conditions:
            # `override: condition: append` / `append: true` concatenate the text, as Falco does
            full = " ".join([rule.condition] + [t for t, _ in rule.extra_conditions])
            where = rule.extra_conditions[-1][1]
            try:
                parts = [parse(full)]
            except ConditionError as exc:
                raise fail(exc, where, "appended condition: ") from None
        else:
            where = rule.cond_where
        tree: Any
        try:
            tree = expand(parts[0], macros, lists)
        except ConditionError as exc:
            raise fail(exc, where, "condition: ") from None
        for exc_def in rule.exceptions:
            try:
                exc_tree = _exception_tree(exc_def, lists)
            except ConditionError as exc:
                raise fail(exc, exc_def.where, f"exception {exc_def.name!r}: ") from None
            if exc_tree is not None:
                tree = And((tree, Not(exc_tree)))
        try:
            cond = compile_condition(tree)
        except ConditionError as exc:
            msg = str(exc)
            raise RuleError(f"rule {rule.name!r}: condition: {msg}", path=where.path, line=where.line) from None
        try:
            output = compile_output(rule.output)
        except ConditionError as exc:
            raise fail(exc, rule.output_where, "output: ") from None
        prio_name, severity = PRIORITIES[rule.priority.lower()]
        refs = [(ref, where) for ref in _field_refs(tree)]
        refs += [(_output_ref(key), rule.output_where) for key, _, _ in output[1]]
        return CompiledRule(
            name=rule.name,
            rule_id="",
            cond=cond,
            output=output,
            priority=prio_name,
            severity=severity,
            tags=tuple(rule.tags),
            mitre=tuple(t for t in rule.tags if _MITRE.match(t)),
            stages=required_values(tree, _STAGE_KEYS),
            resources=required_values(tree, _RESOURCE_KEYS),
            verbs=required_values(tree, _VERB_KEYS),
            description=rule.desc,
            warnings=tuple(
                f"{at.path}:{at.line}: Falco rule {rule.name!r}: {problem}"
                for ref, at in refs
                if ref.name in _POINTER_FIELDS
                and ref.arg is not None
                and (problem := pointer_problem(ref.arg, ref.key())) is not None
            ),
        )


def _field_refs(node: Any) -> Iterator[FieldRef]:
    """Every field an expanded condition reads."""
    if isinstance(node, XCheck):
        yield node.field
        if isinstance(node.value, FieldRef):
            yield node.value
    elif isinstance(node, Not):
        yield from _field_refs(node.item)
    elif isinstance(node, (And, Or)):
        for item in node.items:
            yield from _field_refs(item)


def _output_ref(key: str) -> FieldRef:
    """An output field's key (`name` or `name[arg]`) as a reference."""
    name, bracket, arg = key.partition("[")
    return FieldRef(name, arg[:-1] if bracket else None)


def _exception_tree(exc: ExceptionItem, lists: dict[str, list[str]]) -> Any:
    """`fields`/`comps`/`values` -> `(f1 c1 v1 and f2 c2 v2) or ...` (None when there are no values)."""
    if isinstance(exc.fields, str):
        fields = [exc.fields]
        comps = [exc.comps if isinstance(exc.comps, str) else "in"]
        rows: list[list[Any]] = [[list(exc.values)]]
    elif isinstance(exc.fields, list) and exc.fields and all(isinstance(f, str) for f in exc.fields):
        fields = list(exc.fields)
        if exc.comps is None:
            comps = ["="] * len(fields)
        elif isinstance(exc.comps, list) and len(exc.comps) == len(fields):
            comps = [str(c) for c in exc.comps]
        else:
            raise ConditionError("comps must be a list as long as fields")
        rows = []
        for row in exc.values:
            if not isinstance(row, list) or len(row) != len(fields):
                raise ConditionError(f"each value must be a list of {len(fields)} item(s), got {row!r}")
            rows.append(row)
    else:
        raise ConditionError("fields must be a field name or a non-empty list of field names")
    for c in comps:
        if c not in OPERATORS or c == "exists":
            raise ConditionError(f"unknown operator {c!r}")
    if not rows or (isinstance(exc.fields, str) and not exc.values):
        return None
    alternatives = []
    for row in rows:
        checks = []
        for fname, comp, val in zip(fields, comps, row, strict=True):
            m = re.match(r"^([A-Za-z_][A-Za-z0-9_.]*)(?:\[(.*)\])?$", fname)
            if m is None:
                raise ConditionError(f"bad field name {fname!r}")
            ref = FieldRef(m.group(1), m.group(2))
            value: str | tuple[str, ...]
            if comp in LIST_RHS_OPS:
                raw_items = val if isinstance(val, list) else [val]
                value = expand_items([Item(str(render(v)), True) for v in raw_items], lists)
            else:
                if isinstance(val, list):
                    raise ConditionError(f"operator {comp!r} takes one value, got a list")
                value = str(render(val))
            checks.append(XCheck(ref, comp, value))
        alternatives.append(checks[0] if len(checks) == 1 else And(tuple(checks)))
    return alternatives[0] if len(alternatives) == 1 else Or(tuple(alternatives))


_STAGE_KEYS = frozenset({("ka.stage", None), ("jevt.value", "/stage"), ("json.value", "/stage")})
_RESOURCE_KEYS = frozenset({("ka.target.resource", None), ("jevt.value", "/objectRef/resource"),
                            ("json.value", "/objectRef/resource")})  # fmt: skip
_VERB_KEYS = frozenset({("ka.verb", None), ("jevt.value", "/verb"), ("json.value", "/verb")})
_POINTER_FIELDS = frozenset({"jevt.value", "json.value"})  # JSON pointers into the event, checked for typos
