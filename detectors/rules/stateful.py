"""Stateful rule types: `threshold`, `distinct_count`, `new_terms`, `sequence`.

They see events in order and keep per-key state in memory; time is the event's own time (stageTimestamp),
so a replay and a live stream give the same alerts. State is bounded: entries older than the rule's window
(or history) are dropped as time advances, and `snapshot()`/`restore()` turn it into JSON and back so it
can be checkpointed with the input position it reflects.
"""

from __future__ import annotations

import re
from bisect import bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from detectors.alerts import DEFAULT_SUPPRESS_S, Alert, Severity, make_alert
from detectors.errors import RuleError
from detectors.events import STAGES, AuditEvent
from detectors.fieldpath import PathError, compile_path
from detectors.rules.conditions import Predicate, compile_condition, index_values
from detectors.rules.match import (
    Allowlist,
    RuleSource,
    RuleTest,
    _parse_allowlist,
    _parse_tests,
    _render,
    parse_header,
)
from detectors.rules.yamlload import LocatedDict, LocatedList

_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SWEEP_EVERY = 4096  # events between sweeps of expired keys
Key = tuple[str, ...]


def parse_duration(value: Any, *, path: str, line: int, what: str) -> float:
    m = _DURATION.match(str(value)) if isinstance(value, (str, int)) else None
    if m is None or int(m.group(1)) <= 0:
        raise RuleError(f"{what} must be a duration like 30s, 15m, 2h or 7d", path=path, line=line)
    return float(int(m.group(1)) * _UNITS[m.group(2)])


def _key_getter(fields: Any, *, path: str, line: int, what: str) -> Callable[[AuditEvent], Key | None]:
    """Key from field paths; None when a key field is missing (such events do not count)."""
    if isinstance(fields, str):
        fields = [fields]
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise RuleError(f"{what} must be a field path or a list of them", path=path, line=line)
    try:
        getters = [compile_path(f).value for f in fields]
    except PathError as exc:
        raise RuleError(f"{what}: {exc}", path=path, line=line) from None

    def key(event: AuditEvent) -> Key | None:
        parts: list[str] = []
        for get in getters:
            value = get(event)
            if value is None or value == "" or value == []:
                return None
            parts.append(",".join(map(str, value)) if isinstance(value, list) else str(value))
        return tuple(parts)

    return key


@dataclass
class _Common:
    """What every stateful rule shares with single-event rules: identity, filter, allowlist, message."""

    id: str
    name: str
    severity: Severity
    description: str
    mitre: tuple[str, ...]
    stages: frozenset[str] | None
    resources: frozenset[str] | None
    predicate: Predicate = field(repr=False)
    allowlist: Allowlist
    message: str
    tests: tuple[RuleTest, ...]
    source: RuleSource
    false_positives: str = ""
    tags: tuple[str, ...] = ()
    suppress_s: float = DEFAULT_SUPPRESS_S
    _seen: int = 0

    def _counts(self, event: AuditEvent) -> bool:
        if self.stages is not None and event.raw.get("stage") not in self.stages:
            return False
        return self.predicate(event) and not self.allowlist.allows(event)

    def _alert(self, event: AuditEvent, message: str, details: dict[str, Any]) -> Alert:
        text = _render(self.message, event) + f" ({message})" if self.message else f"{self.name}: {message}"
        return make_alert(
            rule_id=self.id, rule_name=self.name, severity=self.severity, mitre=self.mitre,
            message=text, event=event, details=details, suppress_s=self.suppress_s,
        )  # fmt: skip


def _common_fields(node: LocatedDict, path: str, extra_keys: frozenset[str]) -> dict[str, Any]:
    header = parse_header(node, path=path, extra_keys=extra_keys)
    match = node["match"]
    return {
        **header,
        "predicate": compile_condition(match, path=path, line=node.line_of("match")),
        "resources": index_values(match, "objectRef.resource"),
        "allowlist": _parse_allowlist(node.get("allowlist"), header["_err"]),
        "tests": _parse_tests(node.get("tests"), header["_err"], path, stateful=True),
    }


def _strip(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if not k.startswith("_")}


@dataclass
class ThresholdRule(_Common):
    """At least `threshold` matching events per key within a sliding `window`; one alert per burst."""

    key: Callable[[AuditEvent], Key | None] = field(default=lambda e: None, repr=False)
    key_fields: tuple[str, ...] = ()
    window_s: float = 0.0
    threshold: int = 0
    # a short list per key (at most `threshold` entries): far smaller than a deque per key
    _times: dict[Key, list[float]] = field(default_factory=dict, repr=False)

    def detect(self, event: AuditEvent) -> list[Alert]:
        if not self._counts(event):
            return []
        key = self.key(event)
        if key is None:
            return []
        now = event.timestamp
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = []
        insort(times, now)  # batches arrive out of order; keep the list sorted
        expired = bisect_right(times, now - self.window_s) if times[0] <= now - self.window_s else 0
        if expired:
            del times[:expired]
        self._sweep(now)
        if len(times) < self.threshold:
            return []
        first = times[0]
        times.clear()  # the burst is reported; the next alert needs a new one
        details = {"key": dict(zip(self.key_fields, key, strict=True)), "count": self.threshold,
                   "window_s": self.window_s, "first_seen": first, "last_seen": now}  # fmt: skip
        return [self._alert(event, f"{self.threshold} events in {_human(now - first)} by {', '.join(key)}", details)]

    def _sweep(self, now: float) -> None:
        self._seen += 1
        if self._seen % _SWEEP_EVERY:
            return
        for k in [k for k, t in self._times.items() if not t or t[-1] <= now - self.window_s]:
            del self._times[k]

    def snapshot(self) -> dict[str, Any]:
        return {"times": [[list(k), list(t)] for k, t in self._times.items() if t]}

    def restore(self, state: dict[str, Any]) -> None:
        self._times = {tuple(k): list(t) for k, t in state.get("times", [])}

    @classmethod
    def from_node(cls, node: LocatedDict, *, path: str) -> ThresholdRule:
        fields = _common_fields(node, path, frozenset({"group_by", "window", "threshold"}))
        err = fields["_err"]
        for key in ("group_by", "window", "threshold"):
            if key not in node:
                raise err(f"missing required key {key!r} for a threshold rule")
        threshold = node["threshold"]
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 2:
            raise err("threshold must be an integer of at least 2", "threshold")
        group_by = node["group_by"]
        return cls(
            **_strip(fields),
            key=_key_getter(group_by, path=path, line=node.line_of("group_by"), what="group_by"),
            key_fields=tuple([group_by] if isinstance(group_by, str) else group_by),
            window_s=parse_duration(node["window"], path=path, line=node.line_of("window"), what="window"),
            threshold=threshold,
        )


@dataclass
class DistinctCountRule(_Common):
    """Per key within `window`: at least `min` distinct values of each listed field; one alert per burst."""

    key: Callable[[AuditEvent], Key | None] = field(default=lambda e: None, repr=False)
    key_fields: tuple[str, ...] = ()
    window_s: float = 0.0
    distinct: tuple[tuple[str, Callable[[AuditEvent], Any], int], ...] = ()
    _values: dict[Key, list[dict[str, float]]] = field(default_factory=dict, repr=False)

    def detect(self, event: AuditEvent) -> list[Alert]:
        if not self._counts(event):
            return []
        key = self.key(event)
        if key is None:
            return []
        now = event.timestamp
        per_field = self._values.setdefault(key, [{} for _ in self.distinct])
        for (_, get, _), seen in zip(self.distinct, per_field, strict=True):
            value = get(event)
            if value is not None and value != "":
                seen[str(value)] = now
            for stale in [v for v, ts in seen.items() if ts <= now - self.window_s]:
                del seen[stale]
        self._sweep(now)
        if any(len(seen) < minimum for (_, _, minimum), seen in zip(self.distinct, per_field, strict=True)):
            return []
        counts = {name: sorted(seen)[:20] for (name, _, _), seen in zip(self.distinct, per_field, strict=True)}
        del self._values[key]
        summary = ", ".join(f"{len(v)} distinct {n}" for n, v in counts.items())
        details = {"key": dict(zip(self.key_fields, key, strict=True)), "distinct": counts, "window_s": self.window_s}
        return [self._alert(event, f"{summary} within {_human(self.window_s)} by {', '.join(key)}", details)]

    def _sweep(self, now: float) -> None:
        self._seen += 1
        if self._seen % _SWEEP_EVERY:
            return
        for k in [
            k for k, per in self._values.items() if all(not s or max(s.values()) <= now - self.window_s for s in per)
        ]:
            del self._values[k]

    def snapshot(self) -> dict[str, Any]:
        return {"values": [[list(k), v] for k, v in self._values.items()]}

    def restore(self, state: dict[str, Any]) -> None:
        self._values = {tuple(k): v for k, v in state.get("values", [])}

    @classmethod
    def from_node(cls, node: LocatedDict, *, path: str) -> DistinctCountRule:
        fields = _common_fields(node, path, frozenset({"group_by", "window", "distinct"}))
        err = fields["_err"]
        for key in ("group_by", "window", "distinct"):
            if key not in node:
                raise err(f"missing required key {key!r} for a distinct_count rule")
        raw = node["distinct"]
        if not isinstance(raw, dict) or not raw:
            raise err("distinct maps field paths to the minimum number of distinct values", "distinct")
        distinct = []
        for name, minimum in raw.items():
            if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 2:
                raise err(f"distinct.{name} must be an integer of at least 2", "distinct")
            try:
                distinct.append((name, compile_path(name).value, minimum))
            except PathError as exc:
                raise err(f"distinct: {exc}", "distinct") from None
        group_by = node["group_by"]
        return cls(
            **_strip(fields),
            key=_key_getter(group_by, path=path, line=node.line_of("group_by"), what="group_by"),
            key_fields=tuple([group_by] if isinstance(group_by, str) else group_by),
            window_s=parse_duration(node["window"], path=path, line=node.line_of("window"), what="window"),
            distinct=tuple(distinct),
        )


@dataclass
class NewTermsRule(_Common):
    """A tuple of `terms` never seen for the key within `history`; silent during the `learning` period."""

    key: Callable[[AuditEvent], Key | None] = field(default=lambda e: None, repr=False)
    key_fields: tuple[str, ...] = ()
    terms: Callable[[AuditEvent], Key | None] = field(default=lambda e: None, repr=False)
    term_fields: tuple[str, ...] = ()
    history_s: float = 0.0
    learning_s: float = 0.0
    _first_event: float | None = None
    _last_seen: dict[Key, float] = field(default_factory=dict, repr=False)

    def detect(self, event: AuditEvent) -> list[Alert]:
        if not self._counts(event):
            return []
        key = self.key(event)
        terms = self.terms(event)
        if key is None or terms is None:
            return []
        now = event.timestamp
        if self._first_event is None:
            self._first_event = now
        entry = key + ("\x1f",) + terms
        previous = self._last_seen.get(entry)
        self._last_seen[entry] = max(now, previous or now)
        self._sweep(now)
        if previous is not None and previous > now - self.history_s:
            return []
        if now - self._first_event < self.learning_s:
            return []  # still learning what is normal
        details = {
            "key": dict(zip(self.key_fields, key, strict=True)),
            "new_terms": dict(zip(self.term_fields, terms, strict=True)),
            "history_s": self.history_s,
            "last_seen_before": previous,
        }
        described = ", ".join(f"{f}={v}" for f, v in zip(self.term_fields, terms, strict=True))
        return [
            self._alert(event, f"first time in {_human(self.history_s)} for {', '.join(key)}: {described}", details)
        ]

    def _sweep(self, now: float) -> None:
        self._seen += 1
        if self._seen % _SWEEP_EVERY:
            return
        for k in [k for k, ts in self._last_seen.items() if ts <= now - self.history_s]:
            del self._last_seen[k]

    def snapshot(self) -> dict[str, Any]:
        return {"first_event": self._first_event, "last_seen": [[list(k), ts] for k, ts in self._last_seen.items()]}

    def restore(self, state: dict[str, Any]) -> None:
        self._first_event = state.get("first_event")
        self._last_seen = {tuple(k): ts for k, ts in state.get("last_seen", [])}

    @classmethod
    def from_node(cls, node: LocatedDict, *, path: str) -> NewTermsRule:
        fields = _common_fields(node, path, frozenset({"group_by", "terms", "history", "learning"}))
        err = fields["_err"]
        for key in ("group_by", "terms", "history"):
            if key not in node:
                raise err(f"missing required key {key!r} for a new_terms rule")
        group_by, terms = node["group_by"], node["terms"]
        history = parse_duration(node["history"], path=path, line=node.line_of("history"), what="history")
        learning = (
            parse_duration(node["learning"], path=path, line=node.line_of("learning"), what="learning")
            if "learning" in node
            else 0.0
        )
        return cls(
            **_strip(fields),
            key=_key_getter(group_by, path=path, line=node.line_of("group_by"), what="group_by"),
            key_fields=tuple([group_by] if isinstance(group_by, str) else group_by),
            terms=_key_getter(terms, path=path, line=node.line_of("terms"), what="terms"),
            term_fields=tuple([terms] if isinstance(terms, str) else terms),
            history_s=history,
            learning_s=learning,
        )


@dataclass(frozen=True)
class _Step:
    name: str
    predicate: Predicate
    key: Callable[[AuditEvent], Key | None]
    stages: frozenset[str]


@dataclass
class SequenceRule(_Common):
    """Ordered `steps` by the same key within `within`: alert on the event that completes the sequence."""

    steps: tuple[_Step, ...] = ()
    within_s: float = 0.0
    # key -> (index of the last step reached, time of the first step, auditIDs of the steps so far)
    _progress: dict[Key, tuple[int, float, list[str]]] = field(default_factory=dict, repr=False)

    def detect(self, event: AuditEvent) -> list[Alert]:
        stage = event.raw.get("stage")
        # later steps first: one event must not both start and advance the same sequence
        for index in range(len(self.steps) - 1, -1, -1):
            step = self.steps[index]
            if stage not in step.stages or not step.predicate(event) or self.allowlist.allows(event):
                continue
            now = event.timestamp
            self._sweep(now)
            key = step.key(event)
            if key is None:
                continue
            if index == 0:
                if len(self.steps) == 1:
                    return []
                self._progress[key] = (0, now, [event.audit_id])
                continue
            reached = self._progress.get(key)
            # in order and in time: an event older than the first step (a redelivery) does not complete it
            if reached is None or reached[0] != index - 1 or not 0 <= now - reached[1] <= self.within_s:
                continue
            ids = [*reached[2], event.audit_id]
            if index < len(self.steps) - 1:
                self._progress[key] = (index, reached[1], ids)
                continue
            del self._progress[key]
            names = " -> ".join(s.name for s in self.steps)
            details = {"key": list(key), "steps": [s.name for s in self.steps], "audit_ids": ids,
                       "started": reached[1], "within_s": self.within_s}  # fmt: skip
            return [self._alert(event, f"{names} within {_human(now - reached[1])} by {', '.join(key)}", details)]
        return []

    def _sweep(self, now: float) -> None:
        self._seen += 1
        if self._seen % _SWEEP_EVERY:
            return
        for k in [k for k, (_, start, _) in self._progress.items() if now - start > self.within_s]:
            del self._progress[k]

    def snapshot(self) -> dict[str, Any]:
        return {"progress": [[list(k), i, t, ids] for k, (i, t, ids) in self._progress.items()]}

    def restore(self, state: dict[str, Any]) -> None:
        self._progress = {tuple(k): (i, t, ids) for k, i, t, ids in state.get("progress", [])}

    @classmethod
    def from_node(cls, node: LocatedDict, *, path: str) -> SequenceRule:
        header = parse_header(node, path=path, extra_keys=frozenset({"by", "within", "steps"}), match_required=False)
        err = header["_err"]
        for key in ("by", "within", "steps"):
            if key not in node:
                raise err(f"missing required key {key!r} for a sequence rule")
        raw_steps = node["steps"]
        if not isinstance(raw_steps, LocatedList) or len(raw_steps) < 2:
            raise err("steps must be a list of at least two steps", "steps")
        default_stages = header["stages"]
        steps = []
        for i, raw in enumerate(raw_steps):
            line = raw_steps.line_of(i)
            if not isinstance(raw, LocatedDict) or "match" not in raw or set(raw) - {"name", "match", "by", "stages"}:
                raise RuleError("a step is {name, match, by?, stages?}", path=path, line=line)
            stages = default_stages
            if "stages" in raw:
                if not isinstance(raw["stages"], list) or any(s not in STAGES for s in raw["stages"]):
                    raise RuleError(
                        f"stages must be a list of {', '.join(STAGES)}", path=path, line=raw.line_of("stages")
                    )
                stages = frozenset(raw["stages"])
            steps.append(
                _Step(
                    name=str(raw.get("name", f"step {i + 1}")),
                    predicate=compile_condition(raw["match"], path=path, line=raw.line_of("match")),
                    key=_key_getter(
                        raw.get("by", node["by"]),
                        path=path,
                        line=raw.line_of("by") if "by" in raw else node.line_of("by"),
                        what="by",
                    ),
                    stages=stages,
                )
            )
        header.pop("stages")
        step_resources = [index_values(raw["match"], "objectRef.resource") for raw in raw_steps]
        resources: frozenset[str] | None = frozenset()
        for found in step_resources:  # the pipeline may skip events no step can match
            resources = None if found is None or resources is None else resources | found
        return cls(
            **_strip(header),
            stages=frozenset().union(*(step.stages for step in steps)),
            predicate=lambda e: True,
            resources=resources,
            allowlist=_parse_allowlist(node.get("allowlist"), err),
            tests=_parse_tests(node.get("tests"), err, path, stateful=True),
            steps=tuple(steps),
            within_s=parse_duration(node["within"], path=path, line=node.line_of("within"), what="within"),
        )


def _human(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h".replace(".0h", "h")
    if seconds >= 60:
        return f"{seconds / 60:.1f}m".replace(".0m", "m")
    return f"{seconds:.0f}s"
