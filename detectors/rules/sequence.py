"""`type: sequence` — ordered steps by the same key within a time span; alert on the step that completes it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

from detectors.alerts import Alert
from detectors.errors import RuleError, RuleErrors, check_each, collect
from detectors.events import STAGES, AuditEvent
from detectors.loading.yamlload import LocatedDict, LocatedList
from detectors.rules.conditions import Predicate, compile_condition, index_values, key_condition
from detectors.rules.durations import format_duration, parse_duration
from detectors.rules.header import DEFAULT_STAGES, parse_header
from detectors.rules.journal import KeyJournal
from detectors.rules.stateful import Key, StatefulRule, key_getter, missing_keys, own_key
from detectors.scope import AllOf, AnyOf, KeyTest

STEP_KEYS = frozenset({"name", "match", "by", "stages"})


@dataclass(frozen=True)
class Step:
    name: str
    predicate: Predicate
    key: Callable[[AuditEvent], Key | None]
    stages: frozenset[str]


@dataclass
class SequenceRule(StatefulRule):
    """Ordered `steps` by the same key within `within`: alert on the event that completes the sequence.

    The rule's stages are those of its steps; `match` is per step, so the rule-level predicate is "any"."""

    rule_type: ClassVar[str] = "sequence"

    steps: tuple[Step, ...] = ()
    within_s: float = 0.0
    # key -> (index of the last step reached, time of the first step, auditIDs of the steps so far)
    _progress: dict[Key, tuple[int, float, list[str]]] = field(default_factory=dict, repr=False)

    def detect(self, event: AuditEvent) -> list[Alert]:
        stage = event.raw.get("stage")
        allowlist = self.header.allowlist
        # later steps first: one event must not both start and advance the same sequence
        for index in range(len(self.steps) - 1, -1, -1):
            step = self.steps[index]
            if stage not in step.stages or not step.predicate(event) or allowlist.allows(event):
                continue
            now = event.timestamp
            if self.tick():
                self._sweep(now)
            key = step.key(event)
            if key is None:
                continue
            if index == 0:
                if len(self.steps) == 1:
                    return []
                if self._undo is not None:
                    self._undo.touch(key)
                self._progress[key] = (0, now, [event.audit_id])
                continue
            reached = self._progress.get(key)
            # in order and in time: an event older than the first step (a redelivery) does not complete it
            if reached is None or reached[0] != index - 1 or not 0 <= now - reached[1] <= self.within_s:
                continue
            ids = [*reached[2], event.audit_id]
            if index < len(self.steps) - 1:
                if self._undo is not None:
                    self._undo.touch(key)
                self._progress[key] = (index, reached[1], ids)
                continue
            self.forget(self._progress, key)
            names = " -> ".join(s.name for s in self.steps)
            details = {"key": list(key), "steps": [s.name for s in self.steps], "audit_ids": ids,
                       "started": reached[1], "within_s": self.within_s}  # fmt: skip
            message = f"{names} within {format_duration(now - reached[1])} by {', '.join(key)}"
            return [self.alert(event, message, details)]
        return []

    def _sweep(self, now: float) -> None:
        for k in [k for k, (_, start, _) in self._progress.items() if now - start > self.within_s]:
            self.forget(self._progress, k)

    def journal(self) -> KeyJournal[Key, tuple[int, float, list[str]]]:
        return KeyJournal(self._progress)  # entries are replaced, never changed in place

    def state_keys(self) -> int:
        return len(self._progress)

    def snapshot(self) -> dict[str, Any]:
        return {"progress": [[list(k), i, t, ids] for k, (i, t, ids) in self._progress.items()]}

    def restore(self, state: dict[str, Any]) -> None:
        self._progress = {tuple(k): (i, t, ids) for k, i, t, ids in state.get("progress", [])}

    @classmethod
    def from_node(cls, node: LocatedDict, *, path: str) -> SequenceRule:
        errors = missing_keys(node, path, ("by", "within", "steps"), "sequence")
        header = collect(errors, partial(parse_header, node, path=path, extra_keys=frozenset({"by", "within", "steps"}),
                                         requires_match=False, sequence_tests=True), None)  # fmt: skip
        by = own_key(errors, node, "by", partial(key_getter, path=path, what="by"), None)
        within_s = own_key(errors, node, "within", partial(parse_duration, path=path, what="within"), 0.0)
        stages = header.stages if header is not None else DEFAULT_STAGES  # with a header error, only checked
        parse_steps = partial(_parse_steps, path=path, stages=stages, by=by)
        steps: tuple[Step, ...] = own_key(errors, node, "steps", parse_steps, ())
        if errors or header is None or not steps:
            raise RuleErrors(errors)
        raw_steps = node["steps"]
        resources: frozenset[str] | None = frozenset()
        for raw in raw_steps:  # the pipeline may skip events no step can match
            found = index_values(raw["match"], "objectRef.resource")
            resources = None if found is None or resources is None else resources | found
        return cls(
            dataclasses.replace(header, stages=frozenset().union(*(step.stages for step in steps))),
            resources,
            lambda e: True,
            AnyOf(tuple(_step_condition(step, raw) for step, raw in zip(steps, raw_steps, strict=True))),
            steps=steps,
            within_s=within_s,
        )


def _step_condition(step: Step, raw: LocatedDict) -> AllOf:
    """A step's stages and `match:` on the routing key (detectors.scope)."""
    stages = step.stages
    return AllOf((KeyTest(lambda event: event.raw.get("stage") in stages), key_condition(raw["match"])))


Getter = Callable[[AuditEvent], Key | None]


def _parse_steps(raw: Any, *, path: str, line: int, stages: frozenset[str], by: Getter | None) -> tuple[Step, ...]:
    """`steps:`, each step checked apart; a step's `by` and `stages` default to the rule's (`by` is None when
    the rule's is missing or wrong, an error reported with the rule's keys)."""
    if not isinstance(raw, LocatedList) or len(raw) < 2:
        raise RuleError("steps must be a list of at least two steps", path=path, line=line)
    return tuple(check_each(partial(_parse_step, raw[i], raw.line_of(i), i, stages, by, path) for i in range(len(raw))))


def _parse_step(raw: Any, line: int, i: int, default_stages: frozenset[str], by: Getter | None, path: str) -> Step:
    """Step `i`: `{name?, match, by?, stages?}`; its match, by and stages checked apart."""
    if not isinstance(raw, LocatedDict) or "match" not in raw or set(raw) - STEP_KEYS:
        raise RuleError("a step is {name, match, by?, stages?}", path=path, line=line)
    errors: list[RuleError] = []
    stages = own_key(errors, raw, "stages", partial(_step_stages, path=path), default_stages)
    predicate = own_key(errors, raw, "match", partial(compile_condition, path=path), None)
    key = own_key(errors, raw, "by", partial(key_getter, path=path, what="by"), by)
    if errors or predicate is None or key is None:  # no key: the rule's `by` is wrong, told with its keys
        raise RuleErrors(errors)
    return Step(name=str(raw.get("name", f"step {i + 1}")), predicate=predicate, key=key, stages=stages)


def _step_stages(value: Any, *, path: str, line: int) -> frozenset[str]:
    if not isinstance(value, list) or any(s not in STAGES for s in value):
        raise RuleError(f"stages must be a list of {', '.join(STAGES)}", path=path, line=line)
    return frozenset(value)
