"""Stateful rule types over a time window per key: `threshold`, `distinct_count`, `new_terms`."""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter
from typing import Any, ClassVar

from detectors.alerts import Alert
from detectors.errors import RuleError, RuleErrors, check_each, collect
from detectors.events import AuditEvent
from detectors.fieldpath import PathError, compile_path
from detectors.loading.yamlload import LocatedDict
from detectors.rules.durations import format_duration, parse_duration
from detectors.rules.journal import KeyJournal
from detectors.rules.stateful import Key, StatefulRule, key_fields, key_getter, missing_keys, own_key


def _at_least_two(value: Any, *, path: str, line: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 2:
        raise RuleError(f"{what} must be an integer of at least 2", path=path, line=line)
    return value


Distinct = tuple[str, Callable[[AuditEvent], Any], int]  # a field path, its getter, the least count


def _distinct(raw: Any, *, path: str, line: int) -> tuple[Distinct, ...]:
    """`distinct:` (field path -> minimum count), each field checked apart."""
    if not isinstance(raw, dict) or not raw:
        raise RuleError("distinct maps field paths to the minimum number of distinct values", path=path, line=line)
    lines = {name: raw.line_of(name) if isinstance(raw, LocatedDict) else line for name in raw}
    return tuple(check_each(partial(_distinct_field, name, count, path, lines[name]) for name, count in raw.items()))


def _distinct_field(name: str, minimum: Any, path: str, line: int) -> Distinct:
    errors: list[RuleError] = []
    count = collect(errors, partial(_at_least_two, minimum, path=path, line=line, what=f"distinct.{name}"), 0)
    try:
        getter = compile_path(name).value
    except PathError as exc:
        errors.append(RuleError(f"distinct: {exc}", path=path, line=line))
    if errors:
        raise RuleErrors(errors)
    return name, getter, count


def _note(seen: dict[str, float], value: str, now: float) -> None:
    """`seen[value] = now`, the entries kept in order of time (oldest first) so that `_expire` need not scan."""
    seen.pop(value, None)
    if not seen or next(reversed(seen.values())) <= now:  # the usual case: none later (`_latest`)
        seen[value] = now
        return
    later = []
    while seen and _latest(seen) > now:  # a late event: the few entries after it step aside
        later.append(seen.popitem())
    seen[value] = now
    for entry, ts in reversed(later):
        seen[entry] = ts


def _expire(seen: dict[str, float], horizon: float) -> None:
    """Drop the entries seen at or before `horizon`: the oldest ones, at the front."""
    stale = []
    for value, ts in seen.items():
        if ts > horizon:
            break
        stale.append(value)
    for value in stale:
        del seen[value]


def _latest(seen: dict[str, float]) -> float:
    return next(reversed(seen.values()))


def _by_time(seen: dict[str, float]) -> dict[str, float]:
    return dict(sorted(seen.items(), key=itemgetter(1)))


@dataclass
class ThresholdRule(StatefulRule):
    """At least `threshold` matching events per key within a sliding `window`; one alert per burst."""

    rule_type: ClassVar[str] = "threshold"

    key: Callable[[AuditEvent], Key | None] = field(default=lambda e: None, repr=False)
    key_fields: tuple[str, ...] = ()
    window_s: float = 0.0
    threshold: int = 0
    # a short list per key (at most `threshold` entries): far smaller than a deque per key
    _times: dict[Key, list[float]] = field(default_factory=dict, repr=False)

    def detect(self, event: AuditEvent) -> list[Alert]:
        header = self.header  # `counts`, written out (a call per event costs more than its test)
        if event.raw.get("stage") not in header.stages or not self.predicate(event):
            return []
        if header.allowlist.active and header.allowlist.allows(event):
            return []
        key = self.key(event)
        if key is None:
            return []
        now = event.timestamp
        if self._undo is not None:
            self._undo.touch(key)
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = []
        insort(times, now)  # batches arrive out of order; keep the list sorted
        expired = bisect_right(times, now - self.window_s) if times[0] <= now - self.window_s else 0
        if expired:
            del times[:expired]
        if self.tick():
            self._sweep(now)
        if len(times) < self.threshold:
            return []
        first = times[0]
        times.clear()  # the burst is reported; the next alert needs a new one
        details = {"key": dict(zip(self.key_fields, key, strict=True)), "count": self.threshold,
                   "window_s": self.window_s, "first_seen": first, "last_seen": now}  # fmt: skip
        message = f"{self.threshold} events in {format_duration(now - first)} by {', '.join(key)}"
        return [self.alert(event, message, details)]

    def _sweep(self, now: float) -> None:
        for k in [k for k, t in self._times.items() if not t or t[-1] <= now - self.window_s]:
            self.forget(self._times, k)

    def journal(self) -> KeyJournal[Key, list[float]]:
        return KeyJournal(self._times, list)

    def state_keys(self) -> int:
        return len(self._times)

    def snapshot(self) -> dict[str, Any]:
        return {"times": [[list(k), list(t)] for k, t in self._times.items() if t]}

    def restore(self, state: dict[str, Any]) -> None:
        self._times = {tuple(k): list(t) for k, t in state.get("times", [])}

    @classmethod
    def from_node(cls, node: LocatedDict, *, path: str) -> ThresholdRule:
        keys = ("group_by", "window", "threshold")
        errors = missing_keys(node, path, keys, "threshold")
        common = collect(errors, partial(cls.parse, node, path=path, extra_keys=frozenset(keys)), None)
        key = own_key(errors, node, "group_by", partial(key_getter, path=path, what="group_by"), None)
        window_s = own_key(errors, node, "window", partial(parse_duration, path=path, what="window"), 0.0)
        threshold = own_key(errors, node, "threshold", partial(_at_least_two, path=path, what="threshold"), 0)
        if errors or common is None or key is None:
            raise RuleErrors(errors)
        return cls(*common, key=key, key_fields=key_fields(node["group_by"]), window_s=window_s, threshold=threshold)


@dataclass
class DistinctCountRule(StatefulRule):
    """Per key within `window`: at least `min` distinct values of each listed field; one alert per burst."""

    rule_type: ClassVar[str] = "distinct_count"

    key: Callable[[AuditEvent], Key | None] = field(default=lambda e: None, repr=False)
    key_fields: tuple[str, ...] = ()
    window_s: float = 0.0
    distinct: tuple[Distinct, ...] = ()
    _values: dict[Key, list[dict[str, float]]] = field(default_factory=dict, repr=False)

    def detect(self, event: AuditEvent) -> list[Alert]:
        header = self.header  # `counts`, written out (a call per event costs more than its test)
        if event.raw.get("stage") not in header.stages or not self.predicate(event):
            return []
        if header.allowlist.active and header.allowlist.allows(event):
            return []
        key = self.key(event)
        if key is None:
            return []
        now = event.timestamp
        if self._undo is not None:
            self._undo.touch(key)
        per_field = self._values.get(key)
        if per_field is None:
            per_field = self._values[key] = [{} for _ in self.distinct]
        horizon = now - self.window_s
        complete = True
        for (_, get, minimum), seen in zip(self.distinct, per_field, strict=True):
            value = get(event)
            if value is not None and value != "":
                _note(seen, value if type(value) is str else str(value), now)
            if seen and next(iter(seen.values())) <= horizon:  # the oldest has expired (rarely)
                _expire(seen, horizon)
            complete = complete and len(seen) >= minimum
        if self.tick():
            self._sweep(now)
        if not complete:
            return []
        counts = {name: sorted(seen)[:20] for (name, _, _), seen in zip(self.distinct, per_field, strict=True)}
        self.forget(self._values, key)
        summary = ", ".join(f"{len(v)} distinct {n}" for n, v in counts.items())
        details = {"key": dict(zip(self.key_fields, key, strict=True)), "distinct": counts, "window_s": self.window_s}
        return [self.alert(event, f"{summary} within {format_duration(self.window_s)} by {', '.join(key)}", details)]

    def _sweep(self, now: float) -> None:
        horizon = now - self.window_s
        for k in [k for k, per in self._values.items() if all(not s or _latest(s) <= horizon for s in per)]:
            self.forget(self._values, k)

    def journal(self) -> KeyJournal[Key, list[dict[str, float]]]:
        return KeyJournal(self._values, lambda per_field: [dict(seen) for seen in per_field])

    def state_keys(self) -> int:
        return len(self._values)

    def snapshot(self) -> dict[str, Any]:
        return {"values": [[list(k), v] for k, v in self._values.items()]}

    def restore(self, state: dict[str, Any]) -> None:
        # ordered by time, as `_note` keeps them (snapshots of earlier versions kept the order of first sight)
        self._values = {tuple(k): [_by_time(seen) for seen in v] for k, v in state.get("values", [])}

    @classmethod
    def from_node(cls, node: LocatedDict, *, path: str) -> DistinctCountRule:
        keys = ("group_by", "window", "distinct")
        errors = missing_keys(node, path, keys, "distinct_count")
        common = collect(errors, partial(cls.parse, node, path=path, extra_keys=frozenset(keys)), None)
        key = own_key(errors, node, "group_by", partial(key_getter, path=path, what="group_by"), None)
        window_s = own_key(errors, node, "window", partial(parse_duration, path=path, what="window"), 0.0)
        distinct: tuple[Distinct, ...] = own_key(errors, node, "distinct", partial(_distinct, path=path), ())
        if errors or common is None or key is None:
            raise RuleErrors(errors)
        return cls(*common, key=key, key_fields=key_fields(node["group_by"]), window_s=window_s, distinct=distinct)


@dataclass
class NewTermsRule(StatefulRule):
    """A tuple of `terms` never seen for the key within `history`; silent during the `learning` period."""

    rule_type: ClassVar[str] = "new_terms"

    key: Callable[[AuditEvent], Key | None] = field(default=lambda e: None, repr=False)
    key_fields: tuple[str, ...] = ()
    terms: Callable[[AuditEvent], Key | None] = field(default=lambda e: None, repr=False)
    term_fields: tuple[str, ...] = ()
    history_s: float = 0.0
    learning_s: float = 0.0
    _first_event: float | None = None
    _last_seen: dict[Key, float] = field(default_factory=dict, repr=False)

    def detect(self, event: AuditEvent) -> list[Alert]:
        header = self.header  # `counts`, written out (a call per event costs more than its test)
        if event.raw.get("stage") not in header.stages or not self.predicate(event):
            return []
        if header.allowlist.active and header.allowlist.allows(event):
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
        if not previous or now > previous:  # journaled only when it changes
            if self._undo is not None:
                self._undo.touch(entry)
            self._last_seen[entry] = now
        if self.tick():
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
        message = f"first time in {format_duration(self.history_s)} for {', '.join(key)}: {described}"
        return [self.alert(event, message, details)]

    def _sweep(self, now: float) -> None:
        for k in [k for k, ts in self._last_seen.items() if ts <= now - self.history_s]:
            self.forget(self._last_seen, k)

    def journal(self) -> KeyJournal[Key, float]:
        return KeyJournal(self._last_seen)

    def state_keys(self) -> int:
        return len(self._last_seen)

    def counters(self) -> tuple[Any, ...]:
        return (*super().counters(), self._first_event)

    def set_counters(self, saved: tuple[Any, ...]) -> None:
        super().set_counters(saved[:-1])
        self._first_event = saved[-1]

    def snapshot(self) -> dict[str, Any]:
        return {"first_event": self._first_event, "last_seen": [[list(k), ts] for k, ts in self._last_seen.items()]}

    def restore(self, state: dict[str, Any]) -> None:
        self._first_event = state.get("first_event")
        self._last_seen = {tuple(k): ts for k, ts in state.get("last_seen", [])}

    @classmethod
    def from_node(cls, node: LocatedDict, *, path: str) -> NewTermsRule:
        errors = missing_keys(node, path, ("group_by", "terms", "history"), "new_terms")
        own = frozenset({"group_by", "terms", "history", "learning"})
        common = collect(errors, partial(cls.parse, node, path=path, extra_keys=own), None)
        key = own_key(errors, node, "group_by", partial(key_getter, path=path, what="group_by"), None)
        terms = own_key(errors, node, "terms", partial(key_getter, path=path, what="terms"), None)
        history_s = own_key(errors, node, "history", partial(parse_duration, path=path, what="history"), 0.0)
        learning_s = own_key(errors, node, "learning", partial(parse_duration, path=path, what="learning"), 0.0)
        if errors or common is None or key is None or terms is None:
            raise RuleErrors(errors)
        return cls(
            *common,
            key=key,
            key_fields=key_fields(node["group_by"]),
            terms=terms,
            term_fields=key_fields(node["terms"]),
            history_s=history_s,
            learning_s=learning_s,
        )
