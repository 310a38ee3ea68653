"""Falco rules files collected in load order, with Falco's semantics for how later files change earlier ones.

Redefinition replaces, `override: {key: append|replace}` (or legacy `append: true`) merges, a lone
`enabled:` toggles a rule, exceptions gain values by name. Nothing is compiled here: a macro or list may be
defined after its first use and changed later, so `detectors.falco.format` compiles once every file is in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.errors import RuleError, RuleErrors
from detectors.falco.ruleset import PRIORITIES, SOURCE
from detectors.falco.values import render
from detectors.loading.yamlload import LocatedDict, LocatedList

_RULE_KEYS = frozenset({"rule", "desc", "condition", "output", "priority", "source", "tags", "enabled", "exceptions",
                        "override", "append", "warn_evttypes", "skip-if-unknown-filter", "capture",
                        "capture_duration"})  # fmt: skip
_MACRO_KEYS = frozenset({"macro", "condition", "override", "append", "source"})
_LIST_KEYS = frozenset({"list", "items", "override", "append"})
_RULE_OVERRIDABLE = {
    "append": {"condition", "output", "desc", "tags", "exceptions"},
    "replace": {"condition", "output", "desc", "tags", "exceptions", "priority", "enabled"},
}


@dataclass
class Where:
    """The file and line an item (or one of its keys) came from, for errors at compile time."""

    path: str
    line: int


@dataclass
class ListItem:
    """A `list:` item: its values as later files left them."""

    items: list[str]
    where: Where


@dataclass
class MacroItem:
    """A `macro:` item: its condition text as later files left it."""

    condition: str
    where: Where


@dataclass
class ExceptionItem:
    """One entry of a rule's `exceptions:`; later files add values to it by name."""

    name: str
    fields: Any  # a field name or a list of them, checked when compiled
    comps: Any
    values: list[Any]
    where: Where


@dataclass
class RuleItem:
    """A `rule:` item as later files left it; compiled only once every file is in."""

    name: str
    desc: str
    condition: str
    output: str
    priority: str
    source: str
    tags: list[str]
    enabled: bool
    exceptions: list[ExceptionItem]
    where: Where
    cond_where: Where
    output_where: Where
    skip_if_unknown: bool = False
    extra_conditions: list[tuple[str, Where]] = field(default_factory=list)


class FalcoItems:
    """The lists, macros and rules of every file added so far, as later files left them."""

    def __init__(self) -> None:
        self.lists: dict[str, ListItem] = {}
        self.macros: dict[str, MacroItem] = {}
        self.rules: dict[str, RuleItem] = {}  # insertion order = load order
        self.files: list[str] = []

    def add(self, path: Path, docs: list[Any]) -> None:
        """One file: a YAML list of items; every bad item is reported (RuleErrors)."""
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
        where = Where(p, item.line)
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
        self.lists[name] = ListItem(values, where)

    def _add_macro(self, p: str, item: LocatedDict) -> None:
        self._check_keys(p, item, _MACRO_KEYS)
        name = self._string(p, item, "macro")
        if "condition" not in item:
            raise RuleError(f"macro {name!r} has no condition", path=p, line=item.line)
        cond = self._string(p, item, "condition")
        where = Where(p, item.line_of("condition"))
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
        self.macros[name] = MacroItem(cond, where)

    def _exceptions(self, p: str, item: LocatedDict) -> list[ExceptionItem]:
        raw = item.get("exceptions")
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise RuleError("exceptions must be a list", path=p, line=item.line_of("exceptions"))
        out: list[ExceptionItem] = []
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
            out.append(ExceptionItem(exc["name"], fields, comps, list(values), Where(p, line)))
        return out

    def _add_rule(self, p: str, item: LocatedDict) -> None:
        self._check_keys(p, item, _RULE_KEYS)
        name = self._string(p, item, "rule")
        where = Where(p, item.line)
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
        rule = RuleItem(
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
            cond_where=Where(p, item.line_of("condition")),
            output_where=Where(p, item.line_of("output")),
            skip_if_unknown=item.get("skip-if-unknown-filter") is True,
        )
        if name in self.rules:
            del self.rules[name]  # a redefinition replaces the rule (and moves it to its new place)
        self.rules[name] = rule

    def _apply(self, rule: RuleItem, item: LocatedDict, todo: dict[str, str], exceptions: list[ExceptionItem],
               p: str) -> None:  # fmt: skip
        for key, how in todo.items():
            value = item[key]
            line = Where(p, item.line_of(key))
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
