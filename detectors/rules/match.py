"""`type: match` — a single-event rule: stages, condition, allowlist, message."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from detectors.alerts import Alert, Severity, make_alert
from detectors.errors import RuleError
from detectors.events import STAGES, AuditEvent
from detectors.fieldpath import PathError, compile_path
from detectors.rules.conditions import Predicate, compile_condition, index_values
from detectors.rules.yamlload import LocatedDict, LocatedList

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_MITRE = re.compile(r"^T\d{4}(\.\d{3})?$")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
KNOWN_KEYS = frozenset(
    {
        "id", "name", "type", "severity", "description", "mitre", "false_positives", "tags", "stages",
        "match", "allowlist", "message", "tests", "enabled",
    }
)  # fmt: skip
REQUIRED_KEYS = ("id", "name", "severity", "description", "mitre", "match")
ALLOWLIST_KEYS = ("users", "groups", "namespaces")
DEFAULT_STAGES = frozenset({"ResponseComplete"})


@dataclass(frozen=True, slots=True)
class RuleTest:
    name: str
    expect_alert: bool
    event: dict[str, Any]
    line: int


@dataclass(frozen=True, slots=True)
class RuleSource:
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def _glob_matcher(patterns: list[str]) -> Callable[[str], bool]:
    if not patterns:
        return lambda _v: False
    regex = re.compile("|".join(fnmatch.translate(p) for p in patterns))
    return lambda v: bool(v) and regex.match(v) is not None


@dataclass(frozen=True, slots=True)
class Allowlist:
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    _user: Callable[[str], bool] = field(default=lambda _v: False, repr=False, compare=False)
    _group: Callable[[str], bool] = field(default=lambda _v: False, repr=False, compare=False)
    _namespace: Callable[[str], bool] = field(default=lambda _v: False, repr=False, compare=False)

    @classmethod
    def build(cls, users: list[str], groups: list[str], namespaces: list[str]) -> Allowlist:
        return cls(
            tuple(users), tuple(groups), tuple(namespaces),
            _glob_matcher(users), _glob_matcher(groups), _glob_matcher(namespaces),
        )  # fmt: skip

    def allows(self, event: AuditEvent) -> bool:
        return (
            self._user(event.username) or any(self._group(g) for g in event.groups) or self._namespace(event.namespace)
        )


def _render(template: str, event: AuditEvent) -> str:
    def sub(m: re.Match[str]) -> str:
        value = event.get(m.group(1))
        if value is None or value == [] or value == "":
            return "-"
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value)

    return _PLACEHOLDER.sub(sub, template)


@dataclass(frozen=True, slots=True)
class MatchRule:
    id: str
    name: str
    severity: Severity
    description: str
    mitre: tuple[str, ...]
    stages: frozenset[str] | None
    resources: frozenset[str] | None
    predicate: Predicate = field(repr=False, compare=False)
    allowlist: Allowlist
    message: str
    tests: tuple[RuleTest, ...]
    source: RuleSource
    false_positives: str = ""
    tags: tuple[str, ...] = ()

    def detect(self, event: AuditEvent) -> list[Alert]:
        if self.stages is not None and event.stage not in self.stages:
            return []
        if not self.predicate(event) or self.allowlist.allows(event):
            return []
        return [
            make_alert(
                rule_id=self.id,
                rule_name=self.name,
                severity=self.severity,
                mitre=self.mitre,
                message=_render(self.message, event) if self.message else self.name,
                event=event,
            )
        ]

    @classmethod
    def from_node(cls, node: LocatedDict, *, path: str) -> MatchRule:
        def err(message: str, key: str | None = None) -> RuleError:
            return RuleError(message, path=path, line=node.line_of(key) if key else node.line)

        unknown = sorted(set(node) - KNOWN_KEYS)
        if unknown:
            raise err(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(KNOWN_KEYS))})", unknown[0])
        for key in REQUIRED_KEYS:
            if key not in node:
                raise err(f"missing required key {key!r}")
        for key in ("id", "name", "description"):
            if not isinstance(node[key], str) or not node[key].strip():
                raise err(f"{key!r} must be a non-empty string", key)
        rule_id: str = node["id"]
        if not _ID.match(rule_id):
            raise err(f"id {rule_id!r} must be lower-case letters, digits and dashes", "id")
        try:
            severity = Severity.parse(str(node["severity"]))
        except ValueError as exc:
            raise err(str(exc), "severity") from None
        mitre_raw = node["mitre"]
        mitre = tuple(mitre_raw) if isinstance(mitre_raw, list) else (mitre_raw,)
        for technique in mitre:
            if not isinstance(technique, str) or not _MITRE.match(technique):
                raise err(f"mitre {technique!r} is not an ATT&CK technique id like T1609 or T1552.007", "mitre")
        stages: frozenset[str] = DEFAULT_STAGES
        if "stages" in node:
            raw_stages = node["stages"]
            if not isinstance(raw_stages, list) or not raw_stages or any(s not in STAGES for s in raw_stages):
                raise err(f"stages must be a non-empty list of {', '.join(STAGES)}", "stages")
            stages = frozenset(raw_stages)
        match = node["match"]
        predicate = compile_condition(match, path=path, line=node.line_of("match"))
        allowlist = _parse_allowlist(node.get("allowlist"), err)
        message = node.get("message", "")
        if not isinstance(message, str):
            raise err("message must be a string", "message")
        for placeholder in _PLACEHOLDER.findall(message):
            try:
                compile_path(placeholder)
            except PathError as exc:
                raise err(f"message placeholder: {exc}", "message") from None
        tags = node.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise err("tags must be a list of strings", "tags")
        fps = node.get("false_positives", "")
        if not isinstance(fps, str):
            raise err("false_positives must be a string", "false_positives")
        return cls(
            id=rule_id,
            name=node["name"],
            severity=severity,
            description=node["description"].strip(),
            mitre=mitre,
            stages=stages,
            resources=index_values(match, "objectRef.resource"),
            predicate=predicate,
            allowlist=allowlist,
            message=message,
            tests=_parse_tests(node.get("tests"), err, path),
            source=RuleSource(path, node.line),
            false_positives=fps.strip(),
            tags=tuple(tags),
        )


def _parse_allowlist(raw: Any, err: Callable[..., RuleError]) -> Allowlist:
    if raw is None:
        return Allowlist()
    if not isinstance(raw, dict):
        raise err("allowlist must be a mapping of users/groups/namespaces", "allowlist")
    unknown = sorted(set(raw) - set(ALLOWLIST_KEYS))
    if unknown:
        raise err(f"unknown allowlist key {unknown[0]!r} (known: {', '.join(ALLOWLIST_KEYS)})", "allowlist")
    lists: dict[str, list[str]] = {}
    for key in ALLOWLIST_KEYS:
        value = raw.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise err(f"allowlist.{key} must be a list of strings", "allowlist")
        lists[key] = value
    return Allowlist.build(lists["users"], lists["groups"], lists["namespaces"])


def _parse_tests(raw: Any, err: Callable[..., RuleError], path: str) -> tuple[RuleTest, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise err("tests must be a list", "tests")
    tests: list[RuleTest] = []
    for i, case in enumerate(raw):
        line = raw.line_of(i) if isinstance(raw, LocatedList) else 0
        if not isinstance(case, dict) or set(case) != {"name", "expect", "event"}:
            raise RuleError("a test is {name, expect: alert|none, event}", path=path, line=line)
        if case["expect"] not in ("alert", "none"):
            raise RuleError("test expect must be 'alert' or 'none'", path=path, line=line)
        if not isinstance(case["event"], dict):
            raise RuleError("test event must be a mapping (a full audit Event)", path=path, line=line)
        tests.append(RuleTest(str(case["name"]), case["expect"] == "alert", _plain(case["event"]), line))
    return tuple(tests)


def _plain(value: Any) -> Any:
    """Located containers back to plain dicts/lists, so test events are exactly what JSON would give."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
