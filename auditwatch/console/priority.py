"""The alerts page by priority: the REST API's ranking (GET /api/v1/alerts/priority, api/ranking.py) of the period
the filters choose, and why each alert ranks where it does."""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from api.queries import AlertFilter
from api.ranking import by_priority, corroboration, ranked_severity, stored_facts
from api.routes import ranked_period
from api.store import AlertStore
from detectors.alerts import Severity


@dataclass(frozen=True)
class Ranked:
    """The first alerts by priority, with why each ranks there (alert id -> reasons), out of `total` ranked."""

    items: list[dict[str, Any]]
    reasons: dict[str, list[str]]
    total: int


def reasons_of(severity: int, principal: str, rules: int, context_only: bool) -> list[str]:
    """What moved an alert in the ranking, besides its own severity and time."""
    why = []
    raised = ranked_severity(severity, rules)
    if raised != severity:
        why.append(f"ranks as {Severity(raised).label}: {rules} rules flag {principal}")
    elif rules > 1:
        why.append(f"{rules} rules flag {principal}")
    if context_only:
        why.append("only first seen (baseline context)")
    return why


def ranked_alerts(store: AlertStore, flt: AlertFilter, limit: int) -> Ranked:
    """The `limit` first alerts of the filtered period, most likely attack first, as the REST API ranks them."""
    found, _ = ranked_period(store, flt)  # the page says when the period holds more than MAX_RANKED
    pairs = [(alert, stored_facts(alert)) for alert in found]
    rules = corroboration([facts for _, facts in pairs])
    first = by_priority(pairs, itemgetter(1))[:limit]
    reasons = {
        alert["id"]: reasons_of(f.severity, f.principal, rules.get(f.principal, 0), f.context_only)
        for alert, f in first
    }
    return Ranked([alert for alert, _ in first], reasons, len(found))
