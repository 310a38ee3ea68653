"""What the stateful rule types share: the base `StatefulRule`, event keys, and how state stays bounded.

The types (`threshold`, `distinct_count`, `new_terms` in rules/windowed.py, `sequence` in rules/sequence.py,
`anomaly` in rules/anomaly.py) see events in order and keep per-key state in memory; time is the event's
own time (stageTimestamp), so a replay and a live stream give the same alerts. State is bounded: entries
older than the rule's window (or history) are dropped as time advances, and `snapshot()`/`restore()` turn
it into JSON and back so it can be checkpointed with the input position it reflects.

Every type is `Transactional`: in a batch, its keyed table changes through an undo journal
(rules/journal.py) and its counters are saved at `begin()`, so that `rollback()` restores them exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, TypeVar

from detectors.alerts import Alert, make_alert
from detectors.errors import RuleError, collect
from detectors.events import AuditEvent
from detectors.fieldpath import PathError, compile_path
from detectors.loading.yamlload import LocatedDict
from detectors.rules.conditions import Predicate, key_condition
from detectors.rules.header import NativeRuleAttributes, RuleHeader, parse_header_and_match, render_message
from detectors.rules.journal import KeyJournal
from detectors.scope import UNKNOWN, KeyCondition, Scope

SWEEP_EVERY = 4096  # events between sweeps of expired keys
Key = tuple[str, ...]
T = TypeVar("T")


def missing_keys(node: LocatedDict, path: str, keys: tuple[str, ...], rule_type: str) -> list[RuleError]:
    """An error, at the rule, for each of the rule type's required `keys` the rule lacks."""
    return [
        RuleError(f"missing required key {key!r} for a {rule_type} rule", path=path, line=node.line)
        for key in keys
        if key not in node
    ]


def own_key(errors: list[RuleError], node: LocatedDict, key: str, check: Callable[..., T], fallback: T) -> T:
    """A rule type's own key (`window`, `group_by`...) as `check(value, line=...)` reads it; `fallback` when the
    rule lacks it or it is wrong. Each key is checked apart from the header, `match:` and the other keys, its
    errors added to `errors`, so that a rule's errors are all reported at once."""
    if key not in node:
        return fallback
    return collect(errors, partial(check, node[key], line=node.line_of(key)), fallback)


def key_getter(fields: Any, *, path: str, line: int, what: str) -> Callable[[AuditEvent], Key | None]:
    """Key from field paths; None when a key field is missing (such events do not count)."""
    if isinstance(fields, str):
        fields = [fields]
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise RuleError(f"{what} must be a field path or a list of them", path=path, line=line)
    try:
        getters = [compile_path(f).value for f in fields]
    except PathError as exc:
        raise RuleError(f"{what}: {exc}", path=path, line=line) from None

    if len(getters) == 1:  # the common keys ($principal, a source address) without the loop
        (only,) = getters

        def key_of_one(event: AuditEvent) -> Key | None:
            value = only(event)
            if type(value) is str:
                return (value,) if value else None
            part = _key_part(value)
            return None if part is None else (part,)

        return key_of_one

    def key(event: AuditEvent) -> Key | None:
        parts: list[str] = []
        for get in getters:
            value = get(event)
            part = value if type(value) is str and value else _key_part(value)
            if part is None:
                return None
            parts.append(part)
        return tuple(parts)

    return key


def _key_part(value: Any) -> str | None:
    """One field of a key as text; None for a missing or empty value."""
    if value is None or value == "" or value == []:
        return None
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def key_fields(fields: str | list[str]) -> tuple[str, ...]:
    """The field paths of a `group_by`/`terms` key, as alert details name them."""
    return tuple([fields] if isinstance(fields, str) else fields)


@dataclass
class StatefulRule(NativeRuleAttributes, ABC):
    """What every stateful rule shares with single-event rules: the header, a `match:` filter and the
    resources it requires; subclasses add their keys, windows and state."""

    rule_type: ClassVar[str]  # its `type:` (`StateSized`)
    header: RuleHeader
    resources: frozenset[str] | None
    predicate: Predicate = field(repr=False)
    condition: KeyCondition = field(default=UNKNOWN, repr=False)  # `match:` on the routing key (detectors.scope)
    _seen: int = 0  # events counted since the rule started, to sweep every SWEEP_EVERY of them
    _undo: KeyJournal[Any, Any] | None = field(default=None, repr=False)  # of the open batch's keyed table
    _saved: tuple[Any, ...] = field(default=(), repr=False)  # the counters when the open batch began

    @staticmethod
    def parse(
        node: LocatedDict, *, path: str, extra_keys: frozenset[str]
    ) -> tuple[RuleHeader, frozenset[str] | None, Predicate, KeyCondition]:
        """(header, resources, predicate, condition) of a stateful rule with a `match:`, in constructor order."""
        header, (predicate, resources) = parse_header_and_match(
            node, path=path, extra_keys=extra_keys, sequence_tests=True
        )
        return header, resources, predicate, key_condition(node["match"])

    @property
    def scope(self) -> Scope:
        """Only events that `counts` could count: the others change nothing (detectors.scope)."""
        return Scope(self.header.stages, self.resources, self.condition)

    def counts(self, event: AuditEvent) -> bool:
        """Whether the event is one the rule counts: its stage, its `match:`, not allowed. (The types of
        rules/windowed.py write it out in their `detect`.)"""
        header = self.header
        if event.raw.get("stage") not in header.stages or not self.predicate(event):
            return False
        allowlist = header.allowlist
        return not (allowlist.active and allowlist.allows(event))

    @abstractmethod
    def journal(self) -> KeyJournal[Any, Any]:
        """A new undo journal of the rule's keyed table (each subclass has one)."""

    @abstractmethod
    def state_keys(self) -> int:
        """`StateSized`: the entries of the rule's keyed table (each subclass has one)."""

    def counters(self) -> tuple[Any, ...]:
        """The rule's state outside its keyed table (subclasses with more extend it)."""
        return (self._seen,)

    def set_counters(self, saved: tuple[Any, ...]) -> None:
        (self._seen,) = saved

    def begin(self) -> None:
        self._undo = self.journal()
        self._saved = self.counters()

    def commit(self) -> None:
        self._undo = None

    def rollback(self) -> None:
        if self._undo is None:
            return
        self._undo.undo()
        self._undo = None
        self.set_counters(self._saved)

    def forget(self, table: dict[Any, Any], key: Any) -> None:
        """Delete an entry of the keyed table (journaled in a batch)."""
        if self._undo is not None:
            self._undo.remove(key)
        else:
            del table[key]

    def tick(self) -> bool:
        """Count one event; true every SWEEP_EVERY events, when the subclass drops expired state."""
        self._seen += 1
        return self._seen % SWEEP_EVERY == 0

    def alert(self, event: AuditEvent, message: str, details: dict[str, Any]) -> Alert:
        header = self.header
        text = (
            render_message(header.message, event) + f" ({message})" if header.message else f"{header.name}: {message}"
        )
        return make_alert(
            rule_id=header.id, rule_name=header.name, severity=header.severity, mitre=header.mitre,
            message=text, event=event, details=details, suppress_s=header.suppress_s, guidance=header.guidance,
        )  # fmt: skip
