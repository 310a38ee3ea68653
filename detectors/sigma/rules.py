"""Sigma rule files (`logsource: product: kubernetes, service: audit`) as detectors. See docs/sigma.md.

pySigma parses each rule and resolves its condition; `detectors.sigma.compile` turns that into a predicate.
One detector per rule; rules that can never match as written still load, with a warning (`warnings`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sigma.exceptions import (
    SigmaAuthorError,
    SigmaConditionError,
    SigmaDateError,
    SigmaDescriptionError,
    SigmaError,
    SigmaFalsePositivesError,
    SigmaFieldsError,
    SigmaIdentifierError,
    SigmaLevelError,
    SigmaLicenseError,
    SigmaLogsourceError,
    SigmaModifiedError,
    SigmaReferencesError,
    SigmaRelatedError,
    SigmaRuleLocation,
    SigmaStatusError,
    SigmaTagError,
    SigmaTitleError,
)
from sigma.rule import SigmaLevel, SigmaRule

from detectors.alerts import Alert, Severity, make_alert
from detectors.base import Detector, RuleSource
from detectors.errors import RuleError, RuleErrors, describe_error
from detectors.events import AuditEvent
from detectors.eventschema import path_problem
from detectors.loading.formats import LoadOptions
from detectors.loading.yamlload import LocatedDict, LocatedList, plain
from detectors.patterns import PatternError
from detectors.rules.header import HeaderAttributes, RuleHeader
from detectors.sigma.compile import Compiled, Predicate, compile_conditions
from detectors.sigma.fields import audit_path
from detectors.sigma.values import POLICY, SigmaCompileError

LOGSOURCE = {"product": "kubernetes", "service": "audit"}
_LEVELS = {
    SigmaLevel.INFORMATIONAL: Severity.INFO,
    SigmaLevel.LOW: Severity.LOW,
    SigmaLevel.MEDIUM: Severity.MEDIUM,
    SigmaLevel.HIGH: Severity.HIGH,
    SigmaLevel.CRITICAL: Severity.CRITICAL,
}
DEFAULT_SEVERITY = Severity.MEDIUM  # `level` is optional in Sigma
_TECHNIQUE = re.compile(r"^t(\d{4}(?:\.\d{3})?)$", re.IGNORECASE)
# which top-level key a pySigma error is about
_ERROR_KEYS: tuple[tuple[type[SigmaError], str], ...] = (
    (SigmaLogsourceError, "logsource"),
    (SigmaLevelError, "level"),
    (SigmaStatusError, "status"),
    (SigmaIdentifierError, "id"),
    (SigmaTitleError, "title"),
    (SigmaModifiedError, "modified"),
    (SigmaDateError, "date"),
    (SigmaRelatedError, "related"),
    (SigmaReferencesError, "references"),
    (SigmaTagError, "tags"),
    (SigmaAuthorError, "author"),
    (SigmaDescriptionError, "description"),
    (SigmaFalsePositivesError, "falsepositives"),
    (SigmaFieldsError, "fields"),
    (SigmaLicenseError, "license"),
)

# Which events a Sigma rule looks at. Each request is evaluated once, at the first stage that carries its
# response code: ResponseComplete, except for connection upgrades (exec, attach, port-forward: code 101),
# which are evaluated when the stream opens (ResponseStarted) and skipped when it closes, and failed
# authentication (401), which the apiserver logs as a single ResponseStarted event. Rules whose
# detection tests `stage` themselves see every stage.
GATED_STAGES = frozenset({"ResponseStarted", "ResponseComplete"})
ALL_STAGES = frozenset({"RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"})
_STARTED_CODES = frozenset({101, 401})


def _response_code(raw: dict[str, Any]) -> Any:
    status = raw.get("responseStatus")
    return status.get("code") if isinstance(status, dict) else None


def evaluated_once(event: AuditEvent) -> bool:
    """Whether this event is the one stage of its request that a (stage-agnostic) Sigma rule examines."""
    raw = event.raw
    stage = raw.get("stage")
    if stage == "ResponseComplete":
        return bool(_response_code(raw) != 101)
    if stage == "ResponseStarted":
        return _response_code(raw) in _STARTED_CODES
    return False


def _target(event: AuditEvent) -> str:
    resource = event.resource
    if resource:
        what = resource + (f"/{event.subresource}" if event.subresource else "")
        where = "/".join(p for p in (event.namespace, event.name) if p)
        target = f"{what} {where}" if where else what
    else:
        target = event.request_uri or "-"
    code = event.response_code
    who = event.principal or "unauthenticated"
    return f"{who} {event.verb or '-'} {target}" + (f" ({code})" if code is not None else "")


@dataclass(frozen=True, slots=True)
class SigmaDetector(HeaderAttributes):
    """One Sigma rule. Its header comes from the rule's own fields (id, title, level, tags, description,
    falsepositives); it has no allowlist, message template or test cases. `warnings` holds `file:line: ...`
    notes, e.g. that it can never match as written."""

    rule_format: ClassVar[str] = "sigma"
    header: RuleHeader
    resources: frozenset[str] | None
    predicate: Predicate = field(repr=False, compare=False)
    details: dict[str, Any] = field(compare=False)
    warnings: tuple[str, ...] = ()
    gated: bool = True

    def detect(self, event: AuditEvent) -> list[Alert]:
        if self.gated and not evaluated_once(event):
            return []
        if not self.predicate(event):
            return []
        header = self.header
        return [
            make_alert(
                rule_id=header.id,
                rule_name=header.name,
                severity=header.severity,
                mitre=header.mitre,
                message=f"{header.name}: {_target(event)}",
                event=event,
                details=self.details,
                guidance=header.guidance,
            )
        ]


def _key_line(node: Any, field_name: str | None = None, *, token: str | None = None) -> int | None:
    """Line of the first detection key for `field_name` (`field|mods`), or containing `token`."""
    if isinstance(node, LocatedDict):
        for key, value in node.items():
            if field_name is not None and key.split("|")[0] == field_name:
                return node.line_of(key)
            if token is not None and (token in key or (isinstance(value, str) and token in value)):
                return node.line_of(key)
            found = _key_line(value, field_name, token=token)
            if found is not None:
                return found
    elif isinstance(node, LocatedList):
        for i, item in enumerate(node):
            if token is not None and isinstance(item, str) and token in item:
                return node.line_of(i)
            found = _key_line(item, field_name, token=token)
            if found is not None:
                return found
    return None


def _line_of(doc: Any, key: str) -> int | None:
    return doc.line_of(key) if isinstance(doc, LocatedDict) else None


def _error_line(exc: SigmaError, doc: Any) -> int | None:
    for cls, key in _ERROR_KEYS:
        if isinstance(exc, cls) and key in doc:
            return _line_of(doc, key)
    detection = doc.get("detection") if isinstance(doc, dict) else None
    if isinstance(exc, SigmaConditionError) and isinstance(detection, LocatedDict) and "condition" in detection:
        return detection.line_of("condition")
    if detection is not None:
        for token in re.findall(r"'([^']+)'", str(exc.args[0]) if exc.args else ""):
            line = _key_line(detection, token=token)
            if line is not None:
                return line
        return _line_of(doc, "detection")
    return _line_of(doc, "title") or (doc.line if isinstance(doc, LocatedDict) else None)


def _logsource_problem(rule: SigmaRule) -> str | None:
    ls = rule.logsource
    product, service = (ls.product or "").lower(), (ls.service or "").lower()
    if (product, service) == (LOGSOURCE["product"], LOGSOURCE["service"]):
        return None
    shown = ", ".join(f"{k}: {v}" for k, v in (("category", ls.category), ("product", ls.product),
                                                 ("service", ls.service)) if v) or "empty"  # fmt: skip
    return f"logsource is {{{shown}}}; auditwatch evaluates Sigma rules for product: kubernetes, service: audit only"


def _warnings(compiled: Compiled, title: str, detection: Any, doc: Any, path: str) -> tuple[str, ...]:
    """Why the rule can never match, if it cannot; then each field no audit event has, if not said already."""

    def where(field_name: str | None) -> str:
        return f"{path}:{_key_line(detection, field_name) or _line_of(doc, 'detection')}"

    never = [f"{where(n.field)}: Sigma rule {title!r} can never match as written: {n.reason}" for n in compiled.never]
    said = {audit_path(n.field) for n in compiled.never if n.field is not None}
    unknown = [
        f"{where(field_path)}: Sigma rule {title!r}: {problem}"  # unmapped fields: the name is the path
        for field_path in sorted(compiled.fields - said)
        if (problem := path_problem(field_path)) is not None
    ]
    return tuple(never + unknown)


def build_detector(doc: Any, *, path: str) -> SigmaDetector:
    """One Sigma rule document (a LocatedDict from the loader) -> its detector; RuleError with file:line."""
    line = doc.line if isinstance(doc, LocatedDict) else None
    if not isinstance(doc, dict):
        raise RuleError("a Sigma rule is a mapping", path=path, line=line)
    for key in ("action", "correlation", "filter"):
        if key in doc:
            raise RuleError(f"Sigma {key!r} documents are not supported (single-event rules only)",
                            path=path, line=_line_of(doc, key))  # fmt: skip
    try:
        rule = SigmaRule.from_dict(plain(doc), source=SigmaRuleLocation(Path(path), line), policy=POLICY)
    except SigmaError as exc:
        message = str(exc.args[0]) if exc.args else type(exc).__name__
        if isinstance(exc.__cause__, PatternError):  # a `|re` value that RE2 cannot run: say why, once
            message = str(exc.__cause__)
        raise RuleError(f"Sigma: {message}", path=path, line=_error_line(exc, doc)) from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # pySigma trips on a value of another type
        raise RuleError(f"Sigma: not a valid Sigma rule ({describe_error(exc)})", path=path, line=line) from None
    problem = _logsource_problem(rule)
    if problem is not None:
        raise RuleError(problem, path=path, line=_line_of(doc, "logsource"))
    if rule.id is None:
        raise RuleError("a Sigma rule needs an 'id' (a UUID): alerts use it as their rule id", path=path, line=line)
    detection = doc.get("detection")
    try:
        trees = [condition.parse() for condition in rule.detection.parsed_condition]
        compiled: Compiled = compile_conditions(trees)
    except SigmaError as exc:
        message = str(exc.args[0]) if exc.args else type(exc).__name__
        raise RuleError(f"Sigma: {message}", path=path, line=_error_line(exc, doc)) from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise RuleError(f"Sigma: not a valid detection ({describe_error(exc)})", path=path, line=line) from None
    except SigmaCompileError as exc:
        where = _key_line(detection, exc.field) if exc.field else None
        raise RuleError(exc.message, path=path, line=where or _line_of(doc, "detection")) from None
    warnings = _warnings(compiled, rule.title, detection, doc, path)
    tags = [str(t) for t in rule.tags]
    mitre = tuple(
        dict.fromkeys(
            "T" + m.group(1).upper() for t in rule.tags if t.namespace == "attack" and (m := _TECHNIQUE.match(t.name))
        )
    )
    gated = "stage" not in compiled.fields
    header = RuleHeader(
        id=f"sigma:{rule.id}",
        name=rule.title,
        severity=_LEVELS.get(rule.level, DEFAULT_SEVERITY) if rule.level is not None else DEFAULT_SEVERITY,
        description=(rule.description or "").strip(),
        mitre=mitre,
        stages=GATED_STAGES if gated else ALL_STAGES,
        source=RuleSource(path, line),
        false_positives="; ".join(str(f) for f in rule.falsepositives),
        tags=tuple(tags),
    )
    return SigmaDetector(
        header,
        resources=compiled.resources,
        predicate=compiled.test,
        details={
            "sigma_id": str(rule.id),
            "level": str(rule.level) if rule.level is not None else None,
            "status": str(rule.status) if rule.status is not None else None,
            "tags": tags,
            "references": list(rule.references),
        },
        warnings=warnings,
        gated=gated,
    )


class SigmaRules:
    """Sigma rule files: YAML mapping(s) with `logsource` and `detection` (one rule per document)."""

    name: ClassVar[str] = "sigma"

    def __init__(self) -> None:
        self._detectors: list[Detector] = []
        self.warnings: list[str] = []

    @staticmethod
    def accepts(docs: list[Any]) -> bool:
        return bool(docs) and all(isinstance(d, dict) and "detection" in d for d in docs) and "logsource" in docs[0]

    def add(self, path: Path, docs: list[Any]) -> None:
        errors: list[RuleError] = []
        for doc in docs:
            try:
                detector = build_detector(doc, path=str(path))
            except RuleError as exc:
                errors.append(exc)
                continue
            self._detectors.append(detector)
            self.warnings.extend(detector.warnings)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise RuleErrors(errors)

    def finish(self, options: LoadOptions) -> list[Detector]:
        return list(self._detectors)
