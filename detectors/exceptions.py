"""Rule exceptions: what makes an alert of one rule benign, and the filter that drops the alerts they match.

An exception names a rule and field conditions on the alert's event (the redacted copy an alert carries,
so what an analyst sees in an alert is what an exception matches): a field path (`detectors.fieldpath`:
`user.username`, `objectRef.namespace`, `$containers[*].image`) and the values, or shell globs
(`registry.corp/*`), that make the alert benign. An exception matches an alert of its rule when every one
of its conditions holds; a condition holds when the path yields at least one value and every value it
yields matches one of the condition's globs, so a benign sidecar image cannot excuse a second container.
Conditions of `match_any` hold when at least one value matches (a user's groups: being in one of them is
enough). An expired exception matches nothing.

Pure: which exceptions exist, when they are reloaded and where the hits are counted is the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from detectors.alerts import Alert
from detectors.errors import DetectorError
from detectors.events import AuditEvent
from detectors.fieldpath import CompiledPath, compile_path
from detectors.patterns import Matcher, glob


class ExceptionError(DetectorError):
    """An exception whose field path or glob does not compile; the message says which and why."""


@dataclass(frozen=True, slots=True)
class RuleException:
    """Alerts of `rule_id` whose event matches every condition of `match` (field path -> globs: every value the
    path yields matches) and of `match_any` (at least one value matches) are benign."""

    id: str
    rule_id: str
    match: Mapping[str, tuple[str, ...]]
    expires_at: datetime | None = None
    match_any: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


def field_text(value: Any) -> str:
    """A field value as a condition sees it: strings as they are, other JSON values as JSON (`true`, `3`)."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


def field_values(event: Mapping[str, Any], path: str) -> list[str]:
    """Every value `path` yields in `event`, as conditions see them (to pre-fill an exception from an alert).
    ExceptionError when the path does not parse."""
    return [field_text(v) for v in _compiled_path(path).values(AuditEvent(raw=dict(event)))]


def _compiled_path(path: str) -> CompiledPath:
    try:
        return compile_path(path)
    except DetectorError as exc:
        raise ExceptionError(f"field {path!r}: {exc}") from None


def _condition(path: str, globs: Sequence[str]) -> tuple[CompiledPath, Matcher]:
    if not globs:
        raise ExceptionError(f"field {path!r}: no values")
    compiled = _compiled_path(path)
    try:
        # each value named by its place, not quoted: the error is answered to an HTTP client (a 422)
        return compiled, glob(list(globs), shown=[f"value {n}" for n in range(1, len(globs) + 1)])
    except DetectorError as exc:
        raise ExceptionError(f"field {path!r}: {exc}") from None


def literal_glob(value: str) -> str:
    """A glob that matches exactly `value` (`*`, `?` and `[` taken literally)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in value)


def check_match(match: Mapping[str, Sequence[str]], match_any: Mapping[str, Sequence[str]] | None = None) -> None:
    """ExceptionError when a field path or a glob of `match` (or `match_any`) does not compile, or there is no
    condition at all."""
    if not match and not match_any:
        raise ExceptionError("an exception needs at least one field condition")
    for path, globs in [*match.items(), *(match_any or {}).items()]:
        _condition(path, globs)


@dataclass(frozen=True, slots=True)
class _Compiled:
    exception: RuleException
    conditions: tuple[tuple[CompiledPath, Matcher], ...]
    any_conditions: tuple[tuple[CompiledPath, Matcher], ...] = ()

    def holds(self, event: AuditEvent) -> bool:
        for path, matches in self.conditions:
            values = path.values(event)
            if not values or not all(matches(field_text(v)) for v in values):
                return False
        return all(any(matches(field_text(v)) for v in path.values(event)) for path, matches in self.any_conditions)


class ExceptionSet:
    """Exceptions compiled once, indexed by rule. Those that do not compile (stored by an older version, say)
    are left out and listed in `invalid` as (id, reason)."""

    def __init__(self, exceptions: Iterable[RuleException] = ()) -> None:
        by_rule: dict[str, list[_Compiled]] = {}
        invalid: list[tuple[str, str]] = []
        for exc in exceptions:
            try:
                check_match(exc.match, exc.match_any)
                conditions = tuple(_condition(path, globs) for path, globs in exc.match.items())
                any_conditions = tuple(_condition(path, globs) for path, globs in exc.match_any.items())
            except ExceptionError as error:
                invalid.append((exc.id, str(error)))
                continue
            by_rule.setdefault(exc.rule_id, []).append(_Compiled(exc, conditions, any_conditions))
        self._by_rule = by_rule
        self.invalid = tuple(invalid)

    def __len__(self) -> int:
        return sum(len(items) for items in self._by_rule.values())

    def matching(self, alert: Alert, now: datetime) -> RuleException | None:
        """The first active exception that matches `alert`, or None."""
        candidates = self._by_rule.get(alert.rule_id)
        if not candidates:
            return None
        event = AuditEvent(raw=dict(alert.event))
        for compiled in candidates:
            if compiled.exception.active(now) and compiled.holds(event):
                return compiled.exception
        return None

    def split(self, alerts: Sequence[Alert], now: datetime) -> tuple[list[Alert], dict[str, list[str]]]:
        """The alerts no exception matches, and the ids of those each exception (by id) suppressed."""
        if not self._by_rule:
            return list(alerts), {}
        kept: list[Alert] = []
        hits: dict[str, list[str]] = {}
        for alert in alerts:
            found = self.matching(alert, now)
            if found is None:
                kept.append(alert)
            else:
                hits.setdefault(found.id, []).append(alert.id)
        return kept, hits
