"""The header every native rule type shares, parsed in one place: identity, documentation, stages, message,
suppression, allowlist (detectors/rules/allowlist.py), test cases (detectors/rules/testcases.py) and load
warnings; with the messages it holds.

`RuleHeader` is format-neutral data: Sigma builds one from its own fields too. `parse_header` reads it from
an auditwatch rule mapping (docs/rules.md) and raises RuleErrors: every problem it finds, each at its key's
line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from detectors.alerts import DEFAULT_SUPPRESS_S, Guidance, Severity
from detectors.base import RuleSource, RuleTest
from detectors.errors import RuleError, RuleErrors, collect
from detectors.events import STAGES, AuditEvent
from detectors.fieldpath import PathError, compile_path
from detectors.loading.yamlload import LocatedDict
from detectors.rules.allowlist import Allowlist, parse_allowlist
from detectors.rules.conditions import Predicate, compile_match
from detectors.rules.durations import parse_duration
from detectors.rules.fieldcheck import rule_paths, unknown_field_warnings
from detectors.rules.testcases import parse_tests

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_MITRE = re.compile(r"^T\d{4}(\.\d{3})?$")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_PLACEHOLDER_OR_BRACE = re.compile(r"\{[^{}]+\}|[{}]")  # scans as _PLACEHOLDER does; a lone brace is left over
HEADER_KEYS = frozenset(
    {
        "id", "name", "type", "severity", "description", "mitre", "false_positives", "tags", "stages",
        "match", "allowlist", "message", "tests", "enabled", "suppress", "response",
        "baseline",  # read by the rule format (detectors/rules/baseline.py), which wraps the rule
    }
)  # fmt: skip
REQUIRED_KEYS = ("id", "name", "severity", "description", "mitre", "match")
DEFAULT_STAGES = frozenset({"ResponseComplete"})


# ---- messages --------------------------------------------------------------------------------------------


def render_message(template: str, event: AuditEvent) -> str:
    """Fill a rule's `message` placeholders (`{field.path}`) from the event; `-` for what is missing."""

    def sub(m: re.Match[str]) -> str:
        value = event.get(m.group(1))
        if value is None or value == [] or value == "":
            return "-"
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value)

    return _PLACEHOLDER.sub(sub, template)


# ---- the header ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleHeader:
    """What a rule declares besides its detection logic: who it is, what it is about, when it looks, how it
    alerts, what it must let pass, and how it is tested."""

    id: str
    name: str
    severity: Severity
    description: str
    mitre: tuple[str, ...]
    stages: frozenset[str]
    source: RuleSource
    message: str = ""  # a template (`{field.path}` placeholders); empty: the rule writes its own
    false_positives: str = ""
    response: str = ""  # what to check and how to contain, for whoever reads the alert
    tags: tuple[str, ...] = ()
    suppress_s: float = DEFAULT_SUPPRESS_S
    allowlist: Allowlist = field(default_factory=Allowlist)
    tests: tuple[RuleTest, ...] = ()
    warnings: tuple[str, ...] = ()  # `file:line: ...`: what loads but looks wrong (a field no event has)

    @property
    def guidance(self) -> Guidance:
        """The texts the rule's alerts carry in their details."""
        return Guidance(self.description, self.response, self.false_positives)


def key_error(node: LocatedDict, path: str, message: str, key: str | None = None) -> RuleError:
    """A RuleError at the line of `key` in the rule mapping (at the mapping when no key is given)."""
    return RuleError(message, path=path, line=node.line_of(key) if key else node.line)


def parse_header(
    node: LocatedDict,
    *,
    path: str,
    extra_keys: frozenset[str] = frozenset(),
    requires_match: bool = True,
    sequence_tests: bool = False,
) -> RuleHeader:
    """The keys every rule type shares, validated. `extra_keys` are the rule type's own keys; stateful
    types write their tests as sequences (`sequence_tests`)."""
    known = HEADER_KEYS | extra_keys
    errors = [
        key_error(node, path, f"unknown key {key!r} (known: {', '.join(sorted(known))})", key)
        for key in sorted(set(node) - known)
    ]
    required = [key for key in REQUIRED_KEYS if requires_match or key != "match"]
    errors += [key_error(node, path, f"missing required key {key!r}") for key in required if key not in node]
    for key in ("id", "name", "description"):
        if key in node and (not isinstance(node[key], str) or not node[key].strip()):
            errors.append(key_error(node, path, f"{key!r} must be a non-empty string", key))
    rule_id = node.get("id")
    if isinstance(rule_id, str) and rule_id.strip() and not _ID.match(rule_id):
        errors.append(key_error(node, path, f"id {rule_id!r} must be lower-case letters, digits and dashes", "id"))
    # each check below is independent of the others, so that a file's errors are all reported at once
    severity = collect(errors, lambda: _parse_severity(node, path), Severity.INFO) if "severity" in node else None
    mitre: tuple[str, ...] = collect(errors, lambda: _parse_mitre(node, path), ())
    stages = collect(errors, lambda: _parse_stages(node, path), DEFAULT_STAGES)
    message = collect(errors, lambda: _parse_message(node, path), "")
    tags = node.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        errors.append(key_error(node, path, "tags must be a list of strings", "tags"))
    fps = node.get("false_positives", "")
    if not isinstance(fps, str):
        errors.append(key_error(node, path, "false_positives must be a string", "false_positives"))
    response = node.get("response", "")
    if not isinstance(response, str) or ("response" in node and not response.strip()):
        wanted = "response must be a non-empty string (what to check, how to contain)"
        errors.append(key_error(node, path, wanted, "response"))
    suppress_s = collect(errors, lambda: _parse_suppress(node, path), DEFAULT_SUPPRESS_S)
    allowlist = collect(errors, lambda: parse_allowlist(node, path=path), Allowlist())
    tests: tuple[RuleTest, ...] = collect(errors, lambda: parse_tests(node, path=path, sequences=sequence_tests), ())
    if errors or severity is None or not isinstance(rule_id, str):  # neither is, without an error above
        raise RuleErrors(errors)
    return RuleHeader(
        id=rule_id,
        name=node["name"],
        severity=severity,
        description=node["description"].strip(),
        mitre=mitre,
        stages=stages,
        source=RuleSource(path, node.line),
        message=message,
        false_positives=fps.strip(),
        response=response.strip(),
        tags=tuple(tags),
        suppress_s=suppress_s,
        allowlist=allowlist,
        tests=tests,
        warnings=unknown_field_warnings(
            [*rule_paths(node), *((p, node.line_of("message")) for p in _PLACEHOLDER.findall(message))],
            path=path,
            rule_id=rule_id,
        ),
    )


def parse_header_and_match(
    node: LocatedDict, *, path: str, extra_keys: frozenset[str] = frozenset(), sequence_tests: bool = False
) -> tuple[RuleHeader, tuple[Predicate, frozenset[str] | None]]:
    """The header and the compiled `match:` of a rule; the errors of both are raised together."""
    errors: list[RuleError] = []
    header = collect(errors, lambda: parse_header(node, path=path, extra_keys=extra_keys,
                                                  sequence_tests=sequence_tests), None)  # fmt: skip
    match = collect(errors, lambda: compile_match(node, path=path), None) if "match" in node else None
    if header is None or match is None:  # a missing `match:` is among the header's errors
        raise RuleErrors(errors)
    return header, match


def _parse_severity(node: LocatedDict, path: str) -> Severity:
    try:
        return Severity.parse(str(node["severity"]))
    except ValueError as exc:
        raise key_error(node, path, str(exc), "severity") from None


def _parse_suppress(node: LocatedDict, path: str) -> float:
    if "suppress" not in node:
        return DEFAULT_SUPPRESS_S
    return parse_duration(node["suppress"], path=path, line=node.line_of("suppress"), what="suppress")


def _parse_mitre(node: LocatedDict, path: str) -> tuple[str, ...]:
    raw = node.get("mitre", [])  # missing: reported with the other required keys
    mitre = tuple(raw) if isinstance(raw, list) else (raw,)
    for technique in mitre:
        if not isinstance(technique, str) or not _MITRE.match(technique):
            raise key_error(
                node, path, f"mitre {technique!r} is not an ATT&CK technique id like T1609 or T1552.007", "mitre"
            )
    return mitre


def _parse_stages(node: LocatedDict, path: str) -> frozenset[str]:
    if "stages" not in node:
        return DEFAULT_STAGES
    raw = node["stages"]
    if not isinstance(raw, list) or not raw or any(s not in STAGES for s in raw):
        raise key_error(node, path, f"stages must be a non-empty list of {', '.join(STAGES)}", "stages")
    return frozenset(raw)


def _parse_message(node: LocatedDict, path: str) -> str:
    message = node.get("message", "")
    if not isinstance(message, str):
        raise key_error(node, path, "message must be a string", "message")
    for m in _PLACEHOLDER_OR_BRACE.finditer(message):
        if len(m.group()) == 1:  # render_message would show it as written (an unclosed `{`, a typo)
            raise key_error(
                node, path, f"message has an unmatched {m.group()!r} at character {m.start() + 1}: braces only "
                "enclose placeholders like {user.username}", "message",
            )  # fmt: skip
        try:
            compile_path(m.group()[1:-1])
        except PathError as exc:
            raise key_error(node, path, f"message placeholder: {exc}", "message") from None
    return message


# ---- the header's fields as the rule's own attributes ---------------------------------------------------


class HeaderAttributes:
    """The header fields the detector contract reads on a rule (`Detector.id`/`stages`, `Described`,
    `Catalogued`), delegated to its `header`."""

    __slots__ = ()
    header: RuleHeader
    rule_format: ClassVar[str]  # the rule file format's name (`RuleFormat.name`)

    def rule_severities(self) -> dict[str, Severity]:
        return {self.header.id: self.header.severity}

    @property
    def id(self) -> str:
        return self.header.id

    @property
    def name(self) -> str:
        return self.header.name

    @property
    def severity(self) -> Severity:
        return self.header.severity

    @property
    def mitre(self) -> tuple[str, ...]:
        return self.header.mitre

    @property
    def stages(self) -> frozenset[str]:
        return self.header.stages

    @property
    def source(self) -> RuleSource:
        return self.header.source

    @property
    def description(self) -> str:
        return self.header.description

    @property
    def false_positives(self) -> str:
        return self.header.false_positives

    @property
    def response(self) -> str:
        return self.header.response


class NativeRuleAttributes(HeaderAttributes):
    """A native rule's attributes: the header's, plus its test cases (`SelfTested`) and load warnings
    (`Warns`)."""

    __slots__ = ()
    rule_format: ClassVar[str] = "auditwatch"

    @property
    def tests(self) -> tuple[RuleTest, ...]:
        return self.header.tests

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.header.warnings
