"""`type: match` — a single-event rule: stages, condition, allowlist, message."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from detectors.alerts import DEFAULT_SUPPRESS_S, Alert, Severity, make_alert
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
        "match", "allowlist", "message", "tests", "enabled", "suppress",
    }
)  # fmt: skip
REQUIRED_KEYS = ("id", "name", "severity", "description", "mitre", "match")
ALLOWLIST_KEYS = ("users", "groups", "namespaces", "images", "registries")
DEFAULT_STAGES = frozenset({"ResponseComplete"})


@dataclass(frozen=True, slots=True)
class RuleTest:
    name: str
    expect_alert: bool
    event: dict[str, Any]  # the first (for single-event rules, the only) event
    line: int
    events: tuple[dict[str, Any], ...] = ()  # stateful rules: the whole sequence, in order
    expected_alerts: int | None = None  # stateful rules: how many alerts the sequence must raise, if given


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


def image_registry(image: str) -> str:
    """The registry of an image reference, as the container runtime resolves it (docker.io by default)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


@dataclass(frozen=True, slots=True)
class Allowlist:
    """Events a rule must not alert on. Users, groups, namespaces: any match allows. Images, registries:
    the event is allowed when it carries containers and *every* one of them (init and ephemeral included,
    unlike Falco's main-containers-only exemption) has an allowed image or comes from an allowed registry."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    registries: tuple[str, ...] = ()
    _user: Callable[[str], bool] = field(default=lambda _v: False, repr=False, compare=False)
    _group: Callable[[str], bool] = field(default=lambda _v: False, repr=False, compare=False)
    _namespace: Callable[[str], bool] = field(default=lambda _v: False, repr=False, compare=False)
    _image: Callable[[str], bool] = field(default=lambda _v: False, repr=False, compare=False)
    _registry: Callable[[str], bool] = field(default=lambda _v: False, repr=False, compare=False)

    @classmethod
    def build(cls, lists: dict[str, list[str]]) -> Allowlist:
        return cls(
            users=tuple(lists["users"]), groups=tuple(lists["groups"]), namespaces=tuple(lists["namespaces"]),
            images=tuple(lists["images"]), registries=tuple(lists["registries"]),
            _user=_glob_matcher(lists["users"]), _group=_glob_matcher(lists["groups"]),
            _namespace=_glob_matcher(lists["namespaces"]), _image=_glob_matcher(lists["images"]),
            _registry=_glob_matcher(lists["registries"]),
        )  # fmt: skip

    def allows(self, event: AuditEvent) -> bool:
        if self._user(event.username) or any(self._group(g) for g in event.groups) or self._namespace(event.namespace):
            return True
        if not (self.images or self.registries):
            return False
        images = [i for i in (event.get("$containers[*].image") or []) if isinstance(i, str)]
        return bool(images) and all(self._image(i) or self._registry(image_registry(i)) for i in images)


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
    suppress_s: float = DEFAULT_SUPPRESS_S

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
                suppress_s=self.suppress_s,
            )
        ]

    @classmethod
    def from_node(cls, node: LocatedDict, *, path: str) -> MatchRule:
        header = parse_header(node, path=path)
        match = node["match"]
        return cls(
            id=header["id"],
            name=header["name"],
            severity=header["severity"],
            description=header["description"],
            mitre=header["mitre"],
            stages=header["stages"],
            resources=index_values(match, "objectRef.resource"),
            predicate=compile_condition(match, path=path, line=node.line_of("match")),
            allowlist=_parse_allowlist(node.get("allowlist"), header["_err"]),
            message=header["message"],
            tests=_parse_tests(node.get("tests"), header["_err"], path),
            source=header["source"],
            false_positives=header["false_positives"],
            tags=header["tags"],
            suppress_s=header["suppress_s"],
        )


def parse_header(
    node: LocatedDict, *, path: str, extra_keys: frozenset[str] = frozenset(), match_required: bool = True
) -> dict[str, Any]:
    """The keys every rule type shares, validated; `_err` builds a RuleError at a key's line."""

    def err(message: str, key: str | None = None) -> RuleError:
        return RuleError(message, path=path, line=node.line_of(key) if key else node.line)

    known = KNOWN_KEYS | extra_keys
    unknown = sorted(set(node) - known)
    if unknown:
        raise err(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})", unknown[0])
    for key in REQUIRED_KEYS:
        if key not in node and (match_required or key != "match"):
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
    suppress_s = DEFAULT_SUPPRESS_S
    if "suppress" in node:
        from detectors.rules.stateful import parse_duration

        suppress_s = parse_duration(node["suppress"], path=path, line=node.line_of("suppress"), what="suppress")
    return {
        "suppress_s": suppress_s,
        "id": rule_id,
        "name": node["name"],
        "severity": severity,
        "description": node["description"].strip(),
        "mitre": mitre,
        "stages": stages,
        "message": message,
        "source": RuleSource(path, node.line),
        "false_positives": fps.strip(),
        "tags": tuple(tags),
        "_err": err,
    }


def _parse_allowlist(raw: Any, err: Callable[..., RuleError]) -> Allowlist:
    if raw is None:
        return Allowlist()
    if not isinstance(raw, dict):
        raise err(f"allowlist must be a mapping of {'/'.join(ALLOWLIST_KEYS)}", "allowlist")
    unknown = sorted(set(raw) - set(ALLOWLIST_KEYS))
    if unknown:
        raise err(f"unknown allowlist key {unknown[0]!r} (known: {', '.join(ALLOWLIST_KEYS)})", "allowlist")
    lists: dict[str, list[str]] = {}
    for key in ALLOWLIST_KEYS:
        value = raw.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise err(f"allowlist.{key} must be a list of strings", "allowlist")
        lists[key] = value
    return Allowlist.build(lists)


def _parse_tests(raw: Any, err: Callable[..., RuleError], path: str, *, stateful: bool = False) -> tuple[RuleTest, ...]:
    """`{name, expect, event}` for single-event rules; `{name, expect, sequence: [...]}` for stateful ones.

    A sequence item is `{event, repeat?: N, every?: 30s}`: the event, then N-1 copies `every` apart with
    their own auditIDs, so a test of "20 denied reads in 15 minutes" stays readable.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise err("tests must be a list", "tests")
    tests: list[RuleTest] = []
    body_key = "sequence" if stateful else "event"
    for i, case in enumerate(raw):
        line = raw.line_of(i) if isinstance(raw, LocatedList) else 0
        allowed = {"name", "expect", body_key} | ({"alerts"} if stateful else set())
        if not isinstance(case, dict) or not {"name", "expect", body_key} <= set(case) or set(case) - allowed:
            shape = "{name, expect: alert|none, sequence: [{event, repeat?, every?}], alerts?}" if stateful else (
                "{name, expect: alert|none, event}")  # fmt: skip
            raise RuleError(f"a test is {shape}", path=path, line=line)
        if case["expect"] not in ("alert", "none"):
            raise RuleError("test expect must be 'alert' or 'none'", path=path, line=line)
        expected_count = case.get("alerts")
        if expected_count is not None and (not isinstance(expected_count, int) or isinstance(expected_count, bool)):
            raise RuleError(
                "test alerts must be an integer (how many alerts the sequence raises)", path=path, line=line
            )
        events = _expand_sequence(case[body_key], path, line) if stateful else [case["event"]]
        for event in events:
            if not isinstance(event, dict):
                raise RuleError("test event must be a mapping (a full audit Event)", path=path, line=line)
        tests.append(
            RuleTest(str(case["name"]), case["expect"] == "alert", _plain(events[0]), line,
                     tuple(_plain(e) for e in events), expected_count)
        )  # fmt: skip
    return tuple(tests)


def _expand_sequence(items: Any, path: str, line: int) -> list[Any]:
    from detectors.rules.stateful import parse_duration

    if not isinstance(items, list) or not items:
        raise RuleError("sequence must be a non-empty list of {event, repeat?, every?}", path=path, line=line)
    events: list[Any] = []
    for item in items:
        where = item.line if isinstance(item, LocatedDict) else line
        if not isinstance(item, dict) or "event" not in item or set(item) - {"event", "repeat", "every"}:
            raise RuleError("a sequence item is {event, repeat?, every?}", path=path, line=where)
        repeat = item.get("repeat", 1)
        if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= 10_000:
            raise RuleError("repeat must be an integer from 1 to 10000", path=path, line=where)
        every = parse_duration(item.get("every", "1s"), path=path, line=where, what="every")
        base = item["event"]
        events.append(base)
        for n in range(1, repeat):
            events.append(_shifted(base, n, every * n))
    return events


def _shifted(event: Any, n: int, seconds: float) -> Any:
    """A copy of a test event `seconds` later, with an auditID of its own (still UUID-shaped)."""
    import uuid
    from datetime import timedelta

    from detectors.events import parse_time

    copy = _plain(event)
    if not isinstance(copy, dict):
        return copy
    audit_id = str(copy.get("auditID", ""))
    copy["auditID"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{audit_id}#{n}"))
    for key in ("requestReceivedTimestamp", "stageTimestamp"):
        parsed = parse_time(copy.get(key))
        if parsed is not None:
            copy[key] = (parsed + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return copy


def _plain(value: Any) -> Any:
    """Located containers back to plain dicts/lists, so test events are exactly what JSON would give."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
