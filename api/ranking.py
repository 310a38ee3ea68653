"""Alert priority: the order in which a period's alerts are shown first (`GET /api/v1/alerts/priority`).

Newest first buries a real attack under the day's routine. Priority puts first what is most likely an attack:
  1. severity, raised one level (at most critical) for a principal that several rules flag in the period: an
     intrusion trips several rules on one identity (a new address, then secret reads, then a privileged pod),
     while a site's routine noise is one rule at a time;
  2. then, at equal severity, an alert raised by what the event does before one that pages only because its
     subject is seen for the first time (a learned baseline's `first time` or `new network`: context);
  3. then the more rules corroborate the principal, the earlier; then the earliest event first.
Only alerts of low or higher severity corroborate (an info alert is a habit or context, not a finding).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar

from detectors.alerts import Severity

#: alerts a priority page ranks: a period's newest (a busy day of a large cluster)
MAX_RANKED: Final = 10_000
#: distinct rules flagging one principal (low or higher) from which its alerts rank one severity level up
CORROBORATING_RULES: Final = 3
#: a baseline's reasons that only say the subject is new (docs/baselines.md), not what the event does
CONTEXT_REASONS: Final = frozenset({"first time", "new network"})

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Facts:
    """What priority reads from an alert."""

    severity: int  # detectors.alerts.Severity value
    rule_id: str
    principal: str  # the user, else (unauthenticated) the source address
    time: float  # of the event, epoch seconds
    context_only: bool  # pages only because a baseline saw something new


def context_only(details: Any) -> bool:
    """Whether an alert's `details.baseline` says it pages only for a first-seen term or network."""
    baseline = details.get("baseline") if isinstance(details, Mapping) else None
    reasons = baseline.get("reasons") if isinstance(baseline, Mapping) else None
    return bool(reasons) and isinstance(reasons, list) and set(reasons) <= CONTEXT_REASONS


def corroboration(facts: Sequence[Facts]) -> dict[str, int]:
    """principal -> distinct rules that flagged it at low or higher."""
    rules: defaultdict[str, set[str]] = defaultdict(set)
    for f in facts:
        if f.severity >= Severity.LOW and f.principal:
            rules[f.principal].add(f.rule_id)
    return {p: len(r) for p, r in rules.items()}


def ranked_severity(severity: int, rules: int) -> int:
    """The severity an alert ranks at: one level up (at most critical) when ``rules`` corroborate its principal."""
    return min(severity + 1, Severity.CRITICAL) if rules >= CORROBORATING_RULES else severity


def by_priority(items: Sequence[T], facts_of: Callable[[T], Facts]) -> list[T]:
    """``items`` (a period's alerts, in any shape that ``facts_of`` reads) most likely attack first."""
    facts = [facts_of(i) for i in items]
    rules = corroboration(facts)

    def key(pair: tuple[T, Facts]) -> tuple[int, int, bool, int, float]:
        f = pair[1]
        n = rules.get(f.principal, 0)
        return (-ranked_severity(f.severity, n), -f.severity, f.context_only, -n, f.time)

    return [item for item, _ in sorted(zip(items, facts, strict=True), key=key)]


def stored_facts(alert: dict[str, Any]) -> Facts:
    """Facts of an alert as the store lists it (api.rows.row_to_dict)."""
    sources = alert.get("source_ips") or []
    principal = alert.get("user") or (str(sources[-1]) if sources else "")
    return Facts(
        severity=int(Severity.parse(alert["severity"])),
        rule_id=alert["rule_id"],
        principal=principal,
        time=datetime.fromisoformat(alert["time"]).timestamp(),
        context_only=context_only(alert.get("details")),
    )
