"""Falco rule files (k8s_audit), loaded with Falco's semantics and evaluated natively.

A Falco rules file is one YAML document holding a list of items: `rule`, `macro`, `list`,
`required_engine_version`, `required_plugin_versions`. Files modify earlier ones in load order:
redefinition replaces, `override: {key: append|replace}` (or legacy `append: true`) merges, a lone
`enabled:` toggles a rule, exceptions gain values by name. All files are collected first; rules are
compiled in `finish`, so a macro or list may be defined after its first use and changed later.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from detectors.alerts import Alert, Severity, make_alert
from detectors.base import Detector
from detectors.errors import RuleError, RuleErrors
from detectors.events import AuditEvent
from detectors.falco.condition import (
    LIST_RHS_OPS,
    OPERATORS,
    And,
    Cond,
    ConditionError,
    FieldRef,
    Getter,
    Item,
    Node,
    Not,
    Or,
    XCheck,
    compile_condition,
    expand,
    expand_items,
    field_getter,
    parse,
    required_values,
)
from detectors.falco.fields import Value, _scalar, rawtime_ns, render
from detectors.rules.formats import LoadOptions
from detectors.rules.yamlload import LocatedDict, LocatedList

# priority -> (Falco's spelling, auditwatch severity)
PRIORITIES: dict[str, tuple[str, Severity]] = {
    "emergency": ("Emergency", Severity.CRITICAL),
    "alert": ("Alert", Severity.CRITICAL),
    "critical": ("Critical", Severity.CRITICAL),
    "error": ("Error", Severity.HIGH),
    "warning": ("Warning", Severity.MEDIUM),
    "notice": ("Notice", Severity.LOW),
    "informational": ("Informational", Severity.INFO),
    "info": ("Informational", Severity.INFO),
    "debug": ("Debug", Severity.INFO),
}
SOURCE = "k8s_audit"

_RULE_KEYS = frozenset({"rule", "desc", "condition", "output", "priority", "source", "tags", "enabled", "exceptions",
                        "override", "append", "warn_evttypes", "skip-if-unknown-filter", "capture",
                        "capture_duration"})  # fmt: skip
_MACRO_KEYS = frozenset({"macro", "condition", "override", "append", "source"})
_LIST_KEYS = frozenset({"list", "items", "override", "append"})
_RULE_OVERRIDABLE = {
    "append": {"condition", "output", "desc", "tags", "exceptions"},
    "replace": {"condition", "output", "desc", "tags", "exceptions", "priority", "enabled"},
}
_MITRE = re.compile(r"^(T\d{4}(\.\d{3})?|mitre_.+)$")


@dataclass
class _Where:
    path: str
    line: int


@dataclass
class _List:
    items: list[str]
    where: _Where


@dataclass
class _Macro:
    condition: str
    where: _Where


@dataclass
class _Exception:
    name: str
    fields: Any  # a field name or a list of them, checked when compiled
    comps: Any
    values: list[Any]
    where: _Where


@dataclass
class _Rule:
    name: str
    desc: str
    condition: str
    output: str
    priority: str
    source: str
    tags: list[str]
    enabled: bool
    exceptions: list[_Exception]
    where: _Where
    cond_where: _Where
    output_where: _Where
    skip_if_unknown: bool = False
    extra_conditions: list[tuple[str, _Where]] = field(default_factory=list)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "rule"


class FalcoRules:
    """The `falco` rule format: Falco k8s_audit rules files, unmodified."""

    name: ClassVar[str] = "falco"

    def __init__(self) -> None:
        self.lists: dict[str, _List] = {}
        self.macros: dict[str, _Macro] = {}
        self.rules: dict[str, _Rule] = {}  # insertion order = load order
        self.files: list[str] = []

    @staticmethod
    def accepts(docs: list[Any]) -> bool:
        return len(docs) == 1 and isinstance(docs[0], list)

    # ---- collecting ----------------------------------------------------------------------------------

    def add(self, path: Path, docs: list[Any]) -> None:
        p = str(path)
        self.files.append(p)
        errors: list[RuleError] = []
        items = docs[0]
        for i, item in enumerate(items):
            line = items.line_of(i) if isinstance(items, LocatedList) else 1
            try:
                if not isinstance(item, LocatedDict):
                    raise RuleError("each item of a Falco rules file must be a mapping", path=p, line=line)
                self._add_item(p, item)
            except RuleError as exc:
                errors.append(exc)
        if errors:
            raise RuleErrors(errors)

    def _add_item(self, p: str, item: LocatedDict) -> None:
        if "rule" in item:
            self._add_rule(p, item)
        elif "macro" in item:
            self._add_macro(p, item)
        elif "list" in item:
            self._add_list(p, item)
        elif "required_engine_version" in item or "required_plugin_versions" in item:
            extra = set(item) - {"required_engine_version", "required_plugin_versions"}
            if extra:
                raise RuleError(f"unknown key {sorted(extra)[0]!r}", path=p, line=item.line_of(sorted(extra)[0]))
            plugins = item.get("required_plugin_versions")
            if plugins is not None and not isinstance(plugins, list):
                raise RuleError("required_plugin_versions must be a list", path=p, line=item.line)
        else:
            raise RuleError(
                "unknown item: expected rule, macro, list, required_engine_version or required_plugin_versions",
                path=p, line=item.line,
            )  # fmt: skip

    @staticmethod
    def _check_keys(p: str, item: LocatedDict, allowed: frozenset[str]) -> None:
        for key in item:
            if key not in allowed:
                raise RuleError(f"unknown key {key!r}", path=p, line=item.line_of(key))

    @staticmethod
    def _string(p: str, item: LocatedDict, key: str) -> str:
        value = item[key]
        if not isinstance(value, str):
            raise RuleError(f"{key} must be a string", path=p, line=item.line_of(key))
        return value

    @staticmethod
    def _override(p: str, item: LocatedDict, allowed: dict[str, set[str]]) -> dict[str, str]:
        """`override:` as {key: append|replace}; every key given must be overridable and present."""
        ov = item.get("override")
        if ov is None:
            return {}
        if not isinstance(ov, dict):
            raise RuleError("override must be a mapping of key: append|replace", path=p, line=item.line_of("override"))
        out: dict[str, str] = {}
        for key, how in ov.items():
            line = ov.line_of(key) if isinstance(ov, LocatedDict) else item.line_of("override")
            if how not in allowed:
                raise RuleError(f"override of {key!r} must be append or replace, got {how!r}", path=p, line=line)
            if key not in allowed[how]:
                raise RuleError(f"{key!r} cannot be overridden with {how}", path=p, line=line)
            if key not in item:
                raise RuleError(f"override names {key!r}, which the item does not define", path=p, line=line)
            out[key] = how
        return out

    def _add_list(self, p: str, item: LocatedDict) -> None:
        self._check_keys(p, item, _LIST_KEYS)
        name = self._string(p, item, "list")
        where = _Where(p, item.line)
        items = item.get("items")
        if not isinstance(items, list):
            raise RuleError("list items must be a list", path=p, line=item.line_of("items"))
        values = [str(render(v)) for v in items if v is not None]
        override = self._override(p, item, {"append": {"items"}, "replace": {"items"}})
        append = override.get("items") == "append" or item.get("append") is True
        if append or override:
            if name not in self.lists:
                raise RuleError(f"list {name!r} is appended to or overridden but not defined before", path=p,
                                line=item.line)  # fmt: skip
            if append:
                self.lists[name].items.extend(values)
            else:
                self.lists[name].items = values
            return
        self.lists[name] = _List(values, where)

    def _add_macro(self, p: str, item: LocatedDict) -> None:
        self._check_keys(p, item, _MACRO_KEYS)
        name = self._string(p, item, "macro")
        if "condition" not in item:
            raise RuleError(f"macro {name!r} has no condition", path=p, line=item.line)
        cond = self._string(p, item, "condition")
        where = _Where(p, item.line_of("condition"))
        override = self._override(p, item, {"append": {"condition"}, "replace": {"condition"}})
        append = override.get("condition") == "append" or item.get("append") is True
        if append or override:
            if name not in self.macros:
                raise RuleError(f"macro {name!r} is appended to or overridden but not defined before", path=p,
                                line=item.line)  # fmt: skip
            macro = self.macros[name]
            macro.condition = f"{macro.condition} {cond}" if append else cond
            macro.where = where
            return
        self.macros[name] = _Macro(cond, where)

    def _exceptions(self, p: str, item: LocatedDict) -> list[_Exception]:
        raw = item.get("exceptions")
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise RuleError("exceptions must be a list", path=p, line=item.line_of("exceptions"))
        out: list[_Exception] = []
        for i, exc in enumerate(raw):
            line = raw.line_of(i) if isinstance(raw, LocatedList) else item.line_of("exceptions")
            if not isinstance(exc, dict) or not isinstance(exc.get("name"), str):
                raise RuleError("each exception needs a name", path=p, line=line)
            unknown = set(exc) - {"name", "fields", "comps", "values"}
            if unknown:
                key = sorted(unknown)[0]
                raise RuleError(f"unknown exception key {key!r}", path=p,
                                line=exc.line_of(key) if isinstance(exc, LocatedDict) else line)  # fmt: skip
            fields = exc.get("fields")
            comps = exc.get("comps")
            values = exc.get("values") or []
            if not isinstance(values, list):
                raise RuleError(f"exception {exc['name']!r}: values must be a list", path=p, line=line)
            out.append(_Exception(exc["name"], fields, comps, list(values), _Where(p, line)))
        return out

    def _add_rule(self, p: str, item: LocatedDict) -> None:
        self._check_keys(p, item, _RULE_KEYS)
        name = self._string(p, item, "rule")
        where = _Where(p, item.line)
        override = self._override(p, item, _RULE_OVERRIDABLE)
        legacy_append = item.get("append") is True
        for key in ("enabled",):
            if key in item and not isinstance(item[key], bool):
                raise RuleError("enabled must be true or false", path=p, line=item.line_of(key))
        if "tags" in item and not isinstance(item["tags"], list):
            raise RuleError("tags must be a list", path=p, line=item.line_of("tags"))
        if "priority" in item:
            prio = item["priority"]
            if not isinstance(prio, str) or prio.lower() not in PRIORITIES:
                raise RuleError(f"priority {prio!r} is not one of {', '.join(PRIORITIES)}", path=p,
                                line=item.line_of("priority"))  # fmt: skip
        exceptions = self._exceptions(p, item)
        defined = set(item) - {"rule", "override", "append"}
        if override or legacy_append:
            rule = self.rules.get(name)
            if rule is None:
                raise RuleError(f"rule {name!r} is appended to or overridden but not defined before", path=p,
                                line=item.line)  # fmt: skip
            if override:
                stray = defined - set(override)
                if stray:
                    key = sorted(stray)[0]
                    raise RuleError(f"key {key!r} is not listed in override", path=p, line=item.line_of(key))
                todo = override
            else:
                todo = {k: "append" for k in defined if k in _RULE_OVERRIDABLE["append"]}
                stray = defined - set(todo)
                if stray:
                    key = sorted(stray)[0]
                    raise RuleError(f"key {key!r} cannot be appended", path=p, line=item.line_of(key))
            self._apply(rule, item, todo, exceptions, p)
            return
        if defined == {"enabled"}:  # a lone `enabled:` toggles an existing rule
            rule = self.rules.get(name)
            if rule is None:
                raise RuleError(f"rule {name!r} is enabled/disabled but not defined before", path=p, line=item.line)
            rule.enabled = bool(item["enabled"])
            return
        for key in ("condition", "output", "priority"):
            if key not in item:
                raise RuleError(f"rule {name!r} has no {key}", path=p, line=item.line)
        source = item.get("source", SOURCE)
        rule = _Rule(
            name=name,
            desc=str(item.get("desc") or ""),
            condition=self._string(p, item, "condition"),
            output=str(self._string(p, item, "output")).strip(),
            priority=str(item["priority"]),
            source=str(source),
            tags=[str(t) for t in item.get("tags") or []],
            enabled=bool(item.get("enabled", True)),
            exceptions=exceptions,
            where=where,
            cond_where=_Where(p, item.line_of("condition")),
            output_where=_Where(p, item.line_of("output")),
            skip_if_unknown=item.get("skip-if-unknown-filter") is True,
        )
        if name in self.rules:
            del self.rules[name]  # a redefinition replaces the rule (and moves it to its new place)
        self.rules[name] = rule

    def _apply(self, rule: _Rule, item: LocatedDict, todo: dict[str, str], exceptions: list[_Exception],
               p: str) -> None:  # fmt: skip
        for key, how in todo.items():
            value = item[key]
            line = _Where(p, item.line_of(key))
            if key == "condition":
                text = self._string(p, item, key)
                if how == "append":
                    rule.extra_conditions.append((text, line))
                else:
                    rule.condition, rule.cond_where, rule.extra_conditions = text, line, []
            elif key == "output":
                text = self._string(p, item, key).strip()
                rule.output = f"{rule.output} {text}" if how == "append" else text
                rule.output_where = line
            elif key == "desc":
                rule.desc = f"{rule.desc} {value}" if how == "append" else str(value)
            elif key == "tags":
                tags = [str(t) for t in value or []]
                rule.tags = rule.tags + tags if how == "append" else tags
            elif key == "priority":
                rule.priority = str(value)
            elif key == "enabled":
                rule.enabled = bool(value)
            elif key == "exceptions":
                if how == "replace":
                    rule.exceptions = exceptions
                    continue
                for exc in exceptions:
                    existing = next((e for e in rule.exceptions if e.name == exc.name), None)
                    if existing is None:
                        rule.exceptions.append(exc)
                    else:
                        existing.values.extend(exc.values)

    # ---- building ------------------------------------------------------------------------------------

    def finish(self, options: LoadOptions) -> list[Detector]:
        errors: list[RuleError] = []
        macro_asts: dict[str, Node] = {}
        for name, macro in self.macros.items():
            try:
                macro_asts[name] = parse(macro.condition)
            except ConditionError as exc:
                errors.append(RuleError(f"macro {name!r}: {exc}", path=macro.where.path, line=macro.where.line))
        lists = {name: lst.items for name, lst in self.lists.items()}
        compiled: list[CompiledRule] = []
        ids: set[str] = set()
        for rule in self.rules.values():
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
        if not self.files:
            return []
        return [FalcoRuleset(compiled, options.rule_matching, source=", ".join(self.files))]

    def _compile(self, rule: _Rule, macros: dict[str, Node], lists: dict[str, list[str]]) -> CompiledRule:
        def fail(exc: Exception, where: _Where, what: str) -> RuleError:
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
        )


def _exception_tree(exc: _Exception, lists: dict[str, list[str]]) -> Any:
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


# ---- output --------------------------------------------------------------------------------------------

_OUT_FIELD = re.compile(r"%([A-Za-z_][A-Za-z0-9_.]*)(\[[^\]]*\])?")
Output = tuple[tuple[str | tuple[str, Getter, bool], ...], tuple[tuple[str, Getter, bool], ...]]


def compile_output(text: str) -> Output:
    """`%field` / `%field[arg]` placeholders -> (parts, fields). Unknown fields are load errors."""
    parts: list[str | tuple[str, Getter, bool]] = []
    fields: dict[str, tuple[str, Getter, bool]] = {}
    pos = 0
    for m in _OUT_FIELD.finditer(text):
        name, arg = m.group(1), m.group(2)
        trailing = ""
        while name.endswith(".") and arg is None:  # "%ka.uri." at a sentence end
            name, trailing = name[:-1], "." + trailing
        parts.append(text[pos : m.start()])
        ref = FieldRef(name, arg[1:-1] if arg else None)
        key = ref.key()
        if key not in fields:
            getter, is_list = field_getter(ref)
            fields[key] = (key, getter, is_list)
        parts.append(fields[key])
        if trailing:
            parts.append(trailing)
        pos = m.end()
    parts.append(text[pos:])
    return tuple(p for p in parts if p != ""), tuple(fields.values())


def _show(value: Value) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return "(" + ",".join(value) + ")"
    return value


def iso_ns(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}+0000"


# ---- the detector --------------------------------------------------------------------------------------


@dataclass
class CompiledRule:
    name: str
    rule_id: str
    cond: Cond
    output: Output
    priority: str
    severity: Severity
    tags: tuple[str, ...]
    mitre: tuple[str, ...]
    stages: frozenset[str] | None  # index hints: the values the condition requires, None = any
    resources: frozenset[str] | None
    verbs: frozenset[str] | None

    def applies(self, stage: Value, resource: Value, verb: Value) -> bool:
        return (
            (self.stages is None or stage in self.stages)
            and (self.resources is None or resource in self.resources)
            and (self.verbs is None or verb in self.verbs)
        )


_stage_of = _scalar("stage")
_verb_of = _scalar("verb")
_resource_of = _scalar("objectRef", "resource")
_EMPTY: dict[str, Any] = {}
_INDEX_LIMIT = 4096


class FalcoRuleset:
    """Every enabled k8s_audit rule of the loaded Falco files, as one detector.

    Rules run in load order; with `rule_matching="first"` (Falco's default) the first matching rule wins,
    with "all" every matching rule alerts. Rules are indexed by the stage, resource and verb their
    condition requires, so an event only meets the rules that could match it.
    """

    stages: frozenset[str] | None = None
    resources: frozenset[str] | None = None

    def __init__(self, rules: Sequence[CompiledRule], rule_matching: str = "first", source: str = "") -> None:
        self.id = "falco"
        self.rules = tuple(rules)
        self.first = rule_matching == "first"
        self.source = source
        self._index: dict[tuple[Value, Value, Value], tuple[CompiledRule, ...]] = {}

    def candidates(self, raw: dict[str, Any]) -> tuple[CompiledRule, ...]:
        key = (_stage_of(raw), _resource_of(raw), _verb_of(raw))
        found = self._index.get(key)
        if found is None:
            found = tuple(r for r in self.rules if r.applies(*key))
            if len(self._index) < _INDEX_LIMIT:
                self._index[key] = found
        return found

    def detect(self, event: AuditEvent) -> list[Alert]:
        raw = event.raw
        if not raw.get("auditID"):  # the plugin extracts nothing from an event without auditID
            event = AuditEvent(raw=_EMPTY, origin=event.origin)
            raw = _EMPTY
        alerts: list[Alert] = []
        for rule in self.candidates(raw):
            if rule.cond(event):
                alerts.append(self._alert(rule, event))
                if self.first:
                    break
        return alerts

    def _alert(self, rule: CompiledRule, event: AuditEvent) -> Alert:
        parts, fields = rule.output
        ns = rawtime_ns(event.raw)
        values: dict[str, str | None] = {key: _show(get(event)) for key, get, _ in fields}
        message = "".join(p if isinstance(p, str) else (values[p[0]] or "<NA>") for p in parts)
        output_fields: dict[str, Any] = {"evt.time": ns}
        output_fields.update(values)
        time_text = iso_ns(ns) if ns is not None else "<NA>"
        details = {
            "priority": rule.priority,
            "output": f"{time_text}: {rule.priority} {message}",
            "output_fields": output_fields,
            "tags": list(rule.tags),
            "source": SOURCE,
        }
        return make_alert(
            rule_id=rule.rule_id,
            rule_name=rule.name,
            severity=rule.severity,
            mitre=rule.mitre,
            message=message,
            event=event,
            details=details,
        )
