"""A tuning file compiled against the rules loaded, and applied to their alerts.

Applied to alerts, in the pipeline, so that it is the same for built-in, Falco and Sigma rules: a disabled
rule's detector is not even run (a Falco rule is taken out of its ruleset); an alert is suppressed when a
trusted registry (image rules), a known deployer (write rules) or an exception of the file excuses it, and
counted per rule and reason (`Suppressed`); the severity of the alerts that remain is overridden when the
file says so. Deployers and exceptions are `detectors.exceptions` rule exceptions, matched like those made
through the REST API. Exceptions expire by the time of the event, so a replay is judged as it happened.

Rule ids in the file may be globs (`falco:*`); one that names no loaded rule is a warning, not an error,
so that a file shared by processes loading different packs still starts them all (`rules lint` counts it).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from detectors.alerts import Alert, Severity
from detectors.base import Catalogued, Detector, RuleSet, rule_ids_of
from detectors.errors import RuleError, RuleErrors
from detectors.events import AuditEvent
from detectors.exceptions import ExceptionError, ExceptionSet, RuleException, check_match, field_text, literal_glob
from detectors.fieldpath import compile_path
from detectors.loading.yamlload import LocatedDict
from detectors.patterns import PatternError, glob
from detectors.rules.baseline import contextual_severity
from detectors.tuning.schema import ExceptionEntry, Identities, TuningFile, expiry_time, line_at, read_tuning
from detectors.tuning.scope import DEPLOYED_RESOURCES, DEPLOYER_RULES, IMAGE_RULES, WRITE_VERBS, TrustedRegistries

_IMAGES = compile_path("$containers[*].image")
TRUSTED_REGISTRY = "trusted registry"
DISABLED = "disabled"


@dataclass
class Suppressed:
    """Alerts the tuning kept out, per (rule id, reason): `disabled`, `trusted registry`, `deployer NAME`,
    `exception NAME`. Shared by the pipelines of one process (one per Kafka partition)."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    def total(self) -> int:
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        """`rule-id (reason): n`, most suppressed first."""
        return [f"{rule} ({reason}): {n:,}" for (rule, reason), n in self.counts.most_common()]


@dataclass(frozen=True)
class Tuning:
    """A tuning file compiled for the rules loaded: what the pipeline applies (`enabled`, `apply`) and what
    `rules lint` shows (`entries`, `effects`, `warnings`)."""

    path: str
    disabled: frozenset[str]
    severities: Mapping[str, Severity]
    trusted: TrustedRegistries
    exceptions: ExceptionSet
    entries: tuple[str, ...]  # each trusted registry list, deployer and exception: what it is (`rules lint`)
    effects: Mapping[str, tuple[str, ...]]  # rule id -> what the file does to it (`rules lint`)
    warnings: tuple[str, ...]
    suppressed: Suppressed = field(default_factory=Suppressed)

    def enabled(self, detectors: Sequence[Detector]) -> list[Detector]:
        """The detectors without the disabled rules."""
        kept: list[Detector] = []
        for detector in detectors:
            if isinstance(detector, RuleSet) and self.disabled & set(rule_ids_of(detector)):
                kept.append(detector.without(self.disabled))
            elif detector.id not in self.disabled:
                kept.append(detector)
        return kept

    def apply(self, alerts: Iterable[Alert]) -> list[Alert]:
        """The alerts the tuning does not suppress, with their severity overridden; the others counted."""
        kept: list[Alert] = []
        for alert in alerts:
            reason = self._excuse(alert)
            if reason is not None:
                self.suppressed.counts[(alert.rule_id, reason)] += 1
                continue
            severity = self.severities.get(alert.rule_id)
            baseline = alert.details.get("baseline")
            if severity is not None and isinstance(baseline, dict):  # the rule's severity, judged in context
                severity = contextual_severity(severity, len(baseline.get("reasons", ())))
            if severity is not None and severity != alert.severity:
                details = {**alert.details, "severity_before_tuning": alert.severity.label}
                alert = dataclasses.replace(alert, severity=severity, details=details)
            kept.append(alert)
        return kept

    def _excuse(self, alert: Alert) -> str | None:
        if alert.rule_id in self.disabled:  # a rule left in a detector that could not drop it
            return DISABLED
        if self.trusted.prefixes and alert.rule_id in IMAGE_RULES:
            if self.trusted.trusts_all(_IMAGES.values(AuditEvent(raw=dict(alert.event)))):
                return TRUSTED_REGISTRY
        found = self.exceptions.matching(alert, alert.event_time)
        return None if found is None else found.id


def load_tuning(path: str, detectors: Sequence[Detector]) -> Tuning:
    """The tuning file at `path` for these rules; RuleErrors with every problem (`file:line: message`)."""
    spec, doc = read_tuning(path)
    catalogue: dict[str, Severity | None] = {}
    for detector in detectors:
        if isinstance(detector, Catalogued):
            catalogue.update(detector.rule_severities())
        else:
            catalogue[detector.id] = None
    return _Compiler(path, doc, catalogue).compile(spec)


class _Compiler:
    def __init__(self, path: str, doc: LocatedDict, catalogue: Mapping[str, Severity | None]) -> None:
        self.path = path
        self.doc = doc
        self.catalogue = catalogue  # every loaded rule id, with its own severity when the detector says it
        self.rule_ids = tuple(catalogue)
        self.errors: list[RuleError] = []
        self.warnings: list[str] = []
        self.effects: dict[str, list[str]] = {}
        self.entries: list[str] = []

    def line(self, *loc: str | int) -> int | None:
        return line_at(self.doc, loc)

    def rules(self, patterns: Sequence[str], *loc: str | int) -> list[str]:
        """The loaded rule ids that `patterns` (ids or globs; the list at `loc`) name; a pattern naming none is a
        warning."""
        found: list[str] = []
        for index, pattern in enumerate(patterns):
            line = self.line(*loc, index)
            try:
                matches = glob([pattern])
            except PatternError as exc:
                self.errors.append(RuleError(f"rule {pattern!r}: {exc}", path=self.path, line=line))
                continue
            named = [rid for rid in self.rule_ids if matches(rid)]
            if not named:
                self.warnings.append(f"{self.path}:{line}: rule {pattern!r} names no loaded rule")
            found.extend(named)
        return list(dict.fromkeys(found))

    def note(self, rule_ids: Iterable[str], effect: str) -> None:
        for rid in rule_ids:
            self.effects.setdefault(rid, []).append(effect)

    def compile(self, spec: TuningFile) -> Tuning:
        disabled = self.rules(spec.disabled, "disabled")
        self.note(disabled, DISABLED)
        severities: dict[str, Severity] = {}
        for pattern, level in spec.severity.items():
            for rid in self.rules([pattern], "severity", pattern):
                severities[rid] = Severity.parse(level)
                before = self.catalogue.get(rid)
                self.note([rid], f"severity {before.label + ' ' if before is not None else ''}-> {level}")
        if spec.trusted_registries:
            self.entries.append(f"trusted registries: {', '.join(spec.trusted_registries)}")
            self.note([r for r in IMAGE_RULES if r in self.rule_ids], "trusted registries")
        exceptions = [e for i, d in enumerate(spec.deployers) for e in self.deployer(i, d.name, d, d.rules)]
        exceptions += [e for i, entry in enumerate(spec.exceptions) for e in self.exception(i, entry)]
        if self.errors:
            raise RuleErrors(self.errors)
        return Tuning(
            path=self.path, disabled=frozenset(disabled), severities=severities,
            trusted=TrustedRegistries(spec.trusted_registries), exceptions=ExceptionSet(exceptions),
            entries=tuple(self.entries), effects={rid: tuple(effects) for rid, effects in self.effects.items()},
            warnings=tuple(self.warnings),
        )  # fmt: skip

    def deployer(self, index: int, name: str, who: Identities, patterns: Sequence[str] | None) -> list[RuleException]:
        loc = ("deployers", index)
        rule_ids = (
            self.rules(patterns, *loc, "rules")
            if patterns is not None
            else [r for r in DEPLOYER_RULES if r in self.rule_ids]
        )
        writes = {"verb": WRITE_VERBS, "objectRef.resource": DEPLOYED_RESOURCES}
        label = f"deployer {name}"
        self.entries.append(f"{label}: {_identities(who)}: its writes of workloads, RBAC, CRDs and admission webhooks")
        self.note(rule_ids, label)
        return self.excepted(label, rule_ids, writes, who, None, loc)

    def exception(self, index: int, entry: ExceptionEntry) -> list[RuleException]:
        loc = ("exceptions", index)
        rule_ids = self.rules(entry.rules, *loc, "rules")
        match: dict[str, tuple[str, ...]] = {}
        if entry.namespaces:
            match["objectRef.namespace"] = tuple(entry.namespaces)
        if entry.images:
            match["$containers[*].image"] = tuple(entry.images)
        for path, condition in entry.fields.items():
            values = [v if isinstance(v, str) else field_text(v) for v in condition.equals]
            match[path] = (*(literal_glob(v) for v in values), *(literal_glob(p) + "*" for p in condition.prefix))
        expires = expiry_time(entry.expires) if entry.expires else None
        label = f"exception {entry.name}"
        shown = "; ".join(f"{k} {', '.join(v)}" for k, v in match.items())
        who = _identities(entry)
        until = f" (until {entry.expires})" if entry.expires else ""
        self.entries.append(f"{label}: " + "; ".join(p for p in (who, shown) if p) + until)
        self.note(rule_ids, label)
        return self.excepted(label, rule_ids, match, entry, expires, loc)

    def excepted(
        self, label: str, rule_ids: Sequence[str], match: Mapping[str, Sequence[str]], who: Identities,
        expires: datetime | None, loc: tuple[str | int, ...],
    ) -> list[RuleException]:  # fmt: skip
        """One rule exception per rule and identity kind (user names, or groups), all with `match`."""
        users = (*who.users, *(f"system:serviceaccount:{sa}" for sa in who.service_accounts))
        shapes: list[tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]] = []
        base = {k: tuple(v) for k, v in match.items()}
        if users:
            shapes.append(({**base, "user.username": users}, {}))
        if who.groups:
            shapes.append((base, {"user.groups": tuple(who.groups)}))
        if not shapes:
            shapes.append((base, {}))
        for all_of, any_of in shapes:
            try:
                check_match(all_of, any_of)
            except ExceptionError as exc:
                self.errors.append(RuleError(str(exc), path=self.path, line=self.line(*loc)))
                return []
        return [RuleException(label, rid, all_of, expires, any_of) for rid in rule_ids for all_of, any_of in shapes]


def _identities(who: Identities) -> str:
    kinds = (("users", who.users), ("groups", who.groups), ("service accounts", who.service_accounts))
    parts = [f"{kind} {', '.join(values)}" for kind, values in kinds if values]
    return "; ".join(parts)
