"""The detector contract: the one interface every detector implements, and the optional abilities it may have.

The pipeline needs nothing but `Detector`. The abilities are small protocols that consumers test with
`isinstance` (they are runtime-checkable), so a detector declares what it can do by having it, and no
caller probes for attributes by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from detectors.alerts import Alert, Severity
from detectors.events import AuditEvent


class Detector(Protocol):
    """`detect` is pure and synchronous: no I/O, no clock; the same event gives the same alerts."""

    @property
    def id(self) -> str: ...

    # Prefilter hints for the pipeline's index: None means "any".
    @property
    def stages(self) -> frozenset[str] | None: ...

    @property
    def resources(self) -> frozenset[str] | None: ...

    def detect(self, event: AuditEvent) -> list[Alert]: ...


@runtime_checkable
class Stateful(Protocol):
    """Keeps state between events (windows, sequences, models); the state round-trips through JSON."""

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the state with a snapshot; `{}` is the empty state."""
        ...


class StatefulDetector(Detector, Stateful, Protocol):
    """A detector with state: what `Pipeline.stateful` lists."""


@runtime_checkable
class StateSized(Protocol):
    """Says how many keys its state holds (time windows, sequences in progress, principals): what its memory
    grows with. `rule_type` names the kind of rule, so that sizes can be totalled per kind."""

    @property
    def rule_type(self) -> str: ...

    def state_keys(self) -> int: ...


@runtime_checkable
class Transactional(Protocol):
    """State changes in batches that can be undone: between `begin()` and `commit()` the detector keeps an undo
    journal of what it changes, and `rollback()` puts back exactly the state `begin()` saw (a batch whose alerts
    could not be stored must leave no trace, so that its redelivery gives the same alerts). Outside a batch it
    keeps no journal."""

    def begin(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class EventClock(Protocol):
    """What a pipeline's stream clock tells its `Clocked` detectors (they only read it; the pipeline moves it)."""

    def earliest(self, stages: frozenset[str] | None, resources: frozenset[str] | None) -> float | None:
        """The earliest event time among the events the pipeline processed in these stages and resources (None:
        any), or None before the first."""
        ...


@runtime_checkable
class Clocked(Protocol):
    """Measures time from the start of the stream (a learning period) without being shown every event: the
    pipeline gives it its clock when it is built."""

    def clocked_by(self, clock: EventClock) -> None: ...


@dataclass(frozen=True, slots=True)
class RuleSource:
    """Where a detector was defined: its file (a ruleset built from several: their names, comma-separated)
    and the line of the definition, when there is one."""

    path: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else self.path


@runtime_checkable
class Sourced(Protocol):
    """Knows the file it was loaded from; load errors and reports name it."""

    @property
    def source(self) -> RuleSource: ...


@runtime_checkable
class Catalogued(Protocol):
    """Lists the rules it raises alerts for (one, or a whole ruleset's), with the severity of their alerts and
    the file format they came from, so they can be counted before any of them fires."""

    @property
    def rule_format(self) -> str: ...

    def rule_severities(self) -> Mapping[str, Severity]: ...


@runtime_checkable
class Described(Sourced, Protocol):
    """Documented for the people who read its alerts."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def false_positives(self) -> str: ...

    @property
    def response(self) -> str:
        """What to check and how to contain, when an alert comes (empty: the rule does not say)."""
        ...


@dataclass(frozen=True, slots=True)
class RuleTest:
    """One test case a rule file carries: events, and whether they must raise an alert."""

    name: str
    expect_alert: bool
    event: dict[str, Any]  # the first (for single-event rules, the only) event
    line: int
    events: tuple[dict[str, Any], ...] = ()  # stateful rules: the whole sequence, in order
    expected_alerts: int | None = None  # stateful rules: how many alerts the sequence must raise, if given


@runtime_checkable
class SelfTested(Sourced, Protocol):
    """Carries test cases of its own (`auditwatch rules test` runs them; `rules lint` wants both kinds)."""

    @property
    def tests(self) -> tuple[RuleTest, ...]: ...


@runtime_checkable
class Warns(Protocol):
    """Loaded with warnings (`file:line: ...`), e.g. a rule that can never match as written."""

    @property
    def warnings(self) -> tuple[str, ...]: ...


@runtime_checkable
class RuleSet(Protocol):
    """One detector for several rules, each alerting under its own rule id (a Falco ruleset): site tuning
    disables some of its rules through it."""

    def without(self, rule_ids: frozenset[str]) -> Detector:
        """The same detector without these rules."""
        ...


def rule_ids_of(detector: Detector) -> tuple[str, ...]:
    """The rule ids a detector's alerts can carry."""
    return tuple(detector.rule_severities()) if isinstance(detector, Catalogued) else (detector.id,)
