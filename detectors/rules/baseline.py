"""Learned baselines and contextual severity (docs/baselines.md): a rule that opts in with a `baseline:` header
keeps its match logic, and the severity of each alert it raises depends on what the rule has learned.

`Baselined` wraps any detector (a native rule, a Falco or Sigma rule): every alert it raises is an
observation of the baseline's key (whose habit: a principal, a principal x namespace, the cluster) and terms
(what is habitual: a namespace, a registry, a resource). During the learning period, measured in event time
from the first event of the stream in the rule's stages and resources (the pipeline's stream clock tells it,
so the rule is routed only the events its own scope admits), observations only build the baseline and
alerts are held at `info` (unless sensitive). Afterwards each alert is judged against the baseline before it
is learned; its reasons to page are: a term the key never used (first time), a network the key never came
from (`addresses: true`, people only: a pod's address changes at every restart), a `sensitive:` condition.
No reason: `info` (a habit). One: the rule's severity. Two or more: one level above. The alert's
`details.baseline` tells which baseline it was judged against, what was seen and what was new.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from detectors.alerts import Alert, Severity
from detectors.base import Detector, EventClock, Stateful, StateSized, Transactional
from detectors.errors import RuleError
from detectors.events import AuditEvent
from detectors.fieldpath import PathError, compile_path
from detectors.limits import MAX_ALERT_TEXT_BYTES, cap_strings, cap_text
from detectors.redact import redact_text_in
from detectors.rules.baseline_table import HabitTable, Key, Observation, network_of
from detectors.rules.conditions import Predicate, compile_condition
from detectors.rules.durations import parse_duration
from detectors.rules.stateful import key_fields, key_getter
from detectors.scope import Scope, scope_of

DEFAULT_LEARNING_S = 7 * 86400.0
BASELINE_KEYS = frozenset(
    {"kind", "key", "term", "addresses", "sensitive", "history", "max_keys", "max_terms", "max_networks"}
)
SHOWN = 20  # terms and networks an alert lists
_KIND = re.compile(r"^[a-z][a-z0-9-]*$")
# identities whose source address the cluster assigns (pods, nodes): a new one says nothing
_ASSIGNED_ADDRESSES = ("system:serviceaccount:", "system:node:")


@dataclass(frozen=True, slots=True)
class BaselineSpec:
    """A rule's `baseline:` mapping, compiled."""

    kind: str
    key: Callable[[AuditEvent], Key | None] = field(repr=False)
    key_fields: tuple[str, ...]
    terms: Callable[[AuditEvent], list[Any]] = field(repr=False)
    addresses: bool = False
    sensitive: Predicate | None = field(default=None, repr=False)
    history_s: float = 30 * 86400.0
    max_keys: int = 2048
    max_terms: int = 32
    max_networks: int = 8


def _cap(raw: dict[str, Any], name: str, default: int, where: tuple[str, int]) -> int:
    value = raw.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100_000:
        raise RuleError(f"baseline.{name} must be an integer from 1 to 100000", path=where[0], line=where[1])
    return value


def parse_baseline(raw: Any, *, path: str, line: int) -> BaselineSpec:
    """A rule's `baseline:` mapping (docs/baselines.md); RuleError at `line` for what is wrong."""
    if not isinstance(raw, dict):
        raise RuleError("baseline must be a mapping with kind and term", path=path, line=line)
    unknown = sorted(set(raw) - BASELINE_KEYS)
    if unknown:
        known = ", ".join(sorted(BASELINE_KEYS))
        raise RuleError(f"unknown baseline key {unknown[0]!r} (known: {known})", path=path, line=line)
    kind = raw.get("kind")
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise RuleError("baseline.kind must be a lower-case name like exec or registry", path=path, line=line)
    term = raw.get("term")
    if not isinstance(term, str):
        raise RuleError("baseline.term must be a field path", path=path, line=line)
    try:
        term_values = compile_path(term).values
    except PathError as exc:
        raise RuleError(f"baseline.term: {exc}", path=path, line=line) from None
    fields = raw.get("key", [])
    key = key_getter(fields, path=path, line=line, what="baseline.key") if fields else (lambda _e: ())
    addresses = raw.get("addresses", False)
    if not isinstance(addresses, bool):
        raise RuleError("baseline.addresses must be true or false", path=path, line=line)
    sensitive = raw.get("sensitive")
    where = (path, line)
    return BaselineSpec(
        kind=kind,
        key=key,
        key_fields=key_fields(fields) if fields else (),
        terms=term_values,
        addresses=addresses,
        sensitive=None if sensitive is None else compile_condition(sensitive, path=path, line=line),
        history_s=parse_duration(raw.get("history", "30d"), path=path, line=line, what="baseline.history"),
        max_keys=_cap(raw, "max_keys", 2048, where),
        max_terms=_cap(raw, "max_terms", 32, where),
        max_networks=_cap(raw, "max_networks", 8, where),
    )


def contextual_severity(declared: Severity, reasons: int) -> Severity:
    """No reason to page: info; one: the rule's own severity; two or more: one level above (at most critical)."""
    if reasons == 0:
        return Severity.INFO
    return declared if reasons == 1 else Severity(min(declared + 1, Severity.CRITICAL))


class Baselined:
    """A detector whose alerts are judged against a learned baseline (module docstring). It is `Stateful`,
    `StateSized`, `Transactional` (the baseline is checkpointed with the alerts) and `Clocked`; whatever else
    the wrapped rule is (`Described`, `SelfTested`, `Warns`, `Sourced`, `Catalogued`) reads through to it."""

    def __init__(self, rule: Detector, spec: BaselineSpec, learning_s: float = DEFAULT_LEARNING_S) -> None:
        self.rule = rule
        self.spec = spec
        self.learning_s = learning_s
        self.table = HabitTable(spec.max_keys, spec.max_terms, spec.max_networks, spec.history_s)
        self._clocks: list[EventClock] = []  # of the pipelines it runs in (a copy keeps the original's, as its state)
        self._restored_first: float | None = None  # the snapshot's first_event; outside a pipeline, the first judged
        self._saved_observed = 0
        self._saved_rule: dict[str, Any] | None = None  # a stateful rule without a journal: its state at begin()

    def __getattr__(self, name: str) -> Any:
        # only public attributes read through (copy and pickle probe dunders before __init__ has run)
        if name.startswith("_") or name in ("rule", "spec", "learning_s", "table", "first_event"):
            raise AttributeError(name)
        return getattr(self.rule, name)

    @property
    def id(self) -> str:
        return self.rule.id

    @property
    def stages(self) -> frozenset[str] | None:
        return self.rule.stages

    @property
    def resources(self) -> frozenset[str] | None:
        return self.rule.resources

    @property
    def scope(self) -> Scope:
        """The wrapped rule's: the learning period's start comes from the stream clock, not from the events shown."""
        return scope_of(self.rule)

    def clocked_by(self, clock: EventClock) -> None:
        self._clocks.append(clock)

    @property
    def first_event(self) -> float | None:
        """Event time of the first event in the rule's stages and resources: the snapshot's, or a pipeline's
        since, whichever is earliest (None before any)."""
        times = [clock.earliest(self.rule.stages, self.rule.resources) for clock in self._clocks]
        return min((t for t in (self._restored_first, *times) if t is not None), default=None)

    def detect(self, event: AuditEvent) -> list[Alert]:
        alerts = self.rule.detect(event)
        if not alerts:
            return alerts
        now = event.timestamp
        spec = self.spec
        key = spec.key(event)
        terms = tuple(dict.fromkeys(str(v) for v in spec.terms(event) if v is not None and v != ""))
        if key is None or not terms:
            return alerts  # nothing to judge by: the rule's own severity
        network = None
        if spec.addresses and event.source_ips and not event.principal.startswith(_ASSIGNED_ADDRESSES):
            network = network_of(event.source_ips[-1])
        seen = self.table.observe(key, terms, network, now)
        first = self.first_event
        if first is None:  # outside a pipeline (which times each event before its detectors see it): the first
            first = self._restored_first = now  # event this rule judges starts the learning period
        learning = now - first < self.learning_s
        reasons = self._reasons(event, seen, learning)
        context = self._context(key, seen, learning, reasons)
        if learning:
            context["learning_until"] = first + self.learning_s
        return [self._judged(alert, reasons, context) for alert in alerts]

    def _reasons(self, event: AuditEvent, seen: Observation, learning: bool) -> list[str]:
        reasons: list[str] = []
        if not learning and seen.new_terms:
            reasons.append("first time")
        if not learning and seen.new_network and seen.known_networks:
            reasons.append("new network")
        if self.spec.sensitive is not None and self.spec.sensitive(event):
            reasons.append("sensitive")
        return reasons

    def _context(self, key: Key, seen: Observation, learning: bool, reasons: list[str]) -> dict[str, Any]:
        context: dict[str, Any] = {
            "kind": self.spec.kind,
            "key": dict(zip(self.spec.key_fields, key, strict=True)),
            "state": "learning" if learning else ("new" if seen.new_terms else "habit"),
            "seen": list(seen.known[:SHOWN]),
            "new": list(seen.new_terms),
            "reasons": reasons,
        }
        if seen.network is not None:
            context["network"] = {"now": seen.network, "new": seen.new_network, "seen": list(seen.known_networks)}
        return context

    def _judged(self, alert: Alert, reasons: list[str], context: dict[str, Any]) -> Alert:
        severity = contextual_severity(alert.severity, len(reasons))
        if context["state"] == "new":
            note = f"first {context['kind']} {', '.join(context['new'])} for {self._who(context)}"
        else:
            note = f"{context['state']} ({context['kind']})"
        if reasons:
            note += f"; {', '.join(reasons)}"
        tail = cap_text(f" [baseline: {note}]", MAX_ALERT_TEXT_BYTES // 4)  # the note stays in a capped message
        # habits and pages fold into alert groups of their own: a page must not hide in a group of info alerts
        return dataclasses.replace(
            alert, severity=severity, message=cap_text(alert.message, MAX_ALERT_TEXT_BYTES - len(tail.encode())) + tail,
            details={**alert.details, "baseline": cap_strings(redact_text_in(context))},  # capped as make_alert does
            group_key=f"{alert.group_key}\x1f{'page' if reasons else 'habit'}",
        )  # fmt: skip

    @staticmethod
    def _who(context: dict[str, Any]) -> str:
        return ", ".join(str(v) for v in context["key"].values()) or "the cluster"

    # ---- state: Stateful, StateSized and Transactional ------------------------------------------------

    rule_type = "baseline"  # sizes are totalled per kind of state: a baseline's keys are its own kind

    def state_keys(self) -> int:
        """The baseline's keys (principals, or the cluster), plus the wrapped rule's own if it has state."""
        return len(self.table.habits) + (self.rule.state_keys() if isinstance(self.rule, StateSized) else 0)

    def snapshot(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "first_event": self.first_event, "observed": self.table.observed, "habits": self.table.snapshot(),
        }  # fmt: skip
        if isinstance(self.rule, Stateful):
            state["rule"] = self.rule.snapshot()
        return state

    def restore(self, state: dict[str, Any]) -> None:
        self._restored_first = state.get("first_event")
        self.table.observed = int(state.get("observed", 0))
        self.table.restore(state.get("habits", []))
        if isinstance(self.rule, Stateful):
            self.rule.restore(state.get("rule", {}))

    def begin(self) -> None:
        self._saved_observed = self.table.observed
        self.table.begin()
        if isinstance(self.rule, Transactional):
            self.rule.begin()
        elif isinstance(self.rule, Stateful):
            self._saved_rule = self.rule.snapshot()

    def commit(self) -> None:
        self.table.end(keep=True)
        self._saved_rule = None
        if isinstance(self.rule, Transactional):
            self.rule.commit()

    def rollback(self) -> None:
        self.table.observed = self._saved_observed
        self.table.end(keep=False)
        if isinstance(self.rule, Transactional):
            self.rule.rollback()
        elif isinstance(self.rule, Stateful) and self._saved_rule is not None:
            self.rule.restore(self._saved_rule)
        self._saved_rule = None
