"""Figures of the labelled detection benchmark (:mod:`bench.detection`), computed from one tier's alerts.

Every alert carries its event's campaign label (None: benign). Per tier, over the evaluation half: campaign
recall, benign alerts per million benign events by severity class (medium-or-higher, low, info), precision of
each day's top 10 in the product's priority order (api.ranking), time to detect; over the learning half, the
same benign rates (what the tier pages on before its baselines have learned); per day of the whole window,
benign and attack alerts and the rules that made them.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from api.ranking import Facts, by_priority
from simulation import SECOND, Campaign, ClusterProfile

DAY_US: Final = 86400 * SECOND
SEVERITY_CLASSES: Final = ("medium+", "low", "info")


def severity_class(severity: int) -> str:
    """medium+ pages someone, low goes to a queue, info is context (detectors.alerts.Severity values)."""
    return "medium+" if severity >= 2 else ("low" if severity == 1 else "info")


@dataclass(frozen=True)
class AlertRec:
    time_us: int  # the alerted event's stageTimestamp
    severity: int
    rule_id: str
    rule_type: str
    audit_id: str
    campaign: str | None
    user: str = ""
    features: tuple[str, ...] = ()  # the online model's top features, most unusual first
    principal: str = ""  # the user, else (unauthenticated) the source address: what corroboration groups by
    context: bool = False  # pages only because a baseline saw something new (api.ranking.context_only)


def _facts(a: AlertRec) -> Facts:
    return Facts(a.severity, a.rule_id, a.principal or a.user, a.time_us / SECOND, a.context)


@dataclass
class DayStats:
    day: int  # since the start of the window
    date: str
    half: str  # learning | evaluation
    events: int = 0
    benign_events: int = 0
    benign: Counter[str] = field(default_factory=Counter)  # severity class -> benign alerts
    attack: int = 0
    rules: Counter[str] = field(default_factory=Counter)  # rule -> benign alerts


@dataclass
class TierResult:
    name: str
    rule_files: int
    campaigns: int = 0
    detected: dict[str, int] = field(default_factory=dict)  # campaign id -> first alert time (µs)
    campaign_rules: dict[str, list[str]] = field(default_factory=dict)
    campaign_features: dict[str, list[str]] = field(default_factory=dict)
    recall: float = 0.0
    benign_alerts: int = 0
    attack_alerts: int = 0
    alerts_per_million: float = 0.0
    per_million: dict[str, float] = field(default_factory=dict)  # severity class -> evaluation half
    learning_per_million: dict[str, float] = field(default_factory=dict)  # severity class -> learning half
    benign_by_class: Counter[str] = field(default_factory=Counter)
    learning_by_class: Counter[str] = field(default_factory=Counter)
    alerts_per_day: float = 0.0
    top10_precision: float | None = None
    days_with_alerts: int = 0
    median_ttd_s: float | None = None
    ttd_s: dict[str, float] = field(default_factory=dict)
    benign_by_rule: Counter[str] = field(default_factory=Counter)
    learning_by_rule: Counter[str] = field(default_factory=Counter)
    rule_severity: dict[str, str] = field(default_factory=dict)  # rule -> severity class of its alerts
    benign_by_rule_user: Counter[str] = field(default_factory=Counter)
    days: list[DayStats] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class Window:
    """The benchmark's time window, and how many benign events each part of it holds."""

    start_us: int
    eval_start_us: int
    end_us: int
    benign_eval_events: int
    benign_learning_events: int = 0
    #: per day since start: (all events, benign events)
    day_events: tuple[tuple[int, int], ...] = ()


def _per_million(counts: Counter[str], events: int) -> dict[str, float]:
    return {c: (counts[c] / events * 1e6 if events else 0.0) for c in SEVERITY_CLASSES}


def compute_metrics(
    name: str,
    alerts: Sequence[AlertRec],
    campaigns: Sequence[Campaign],
    *,
    eval_start_us: int,
    eval_end_us: int,
    benign_eval_events: int,
    rule_files: int = 0,
    window: Window | None = None,
) -> TierResult:
    """The tier's figures from its alerts (which carry their event's campaign label, or None)."""
    res = TierResult(name, rule_files, campaigns=len(campaigns))
    ev_alerts = [a for a in alerts if eval_start_us <= a.time_us < eval_end_us]
    for a in ev_alerts:
        if a.campaign is None:
            res.benign_alerts += 1
            res.benign_by_rule[a.rule_id] += 1
            res.benign_by_class[severity_class(a.severity)] += 1
            res.benign_by_rule_user[f"{a.rule_id} <- {a.user}"] += 1
        else:
            res.attack_alerts += 1
    for a in alerts:
        res.rule_severity.setdefault(a.rule_id, severity_class(a.severity))
    _campaigns(res, alerts, campaigns)
    res.alerts_per_million = res.benign_alerts / benign_eval_events * 1e6 if benign_eval_events else 0.0
    res.per_million = _per_million(res.benign_by_class, benign_eval_events)
    days = max((eval_end_us - eval_start_us) / DAY_US, 1e-9)
    res.alerts_per_day = len(ev_alerts) / days
    by_day: dict[int, list[AlertRec]] = {}
    for a in ev_alerts:
        by_day.setdefault((a.time_us - eval_start_us) // DAY_US, []).append(a)
    precisions = []
    for day_alerts in by_day.values():
        top = by_priority(day_alerts, _facts)[:10]  # as the product shows a day (GET /api/v1/alerts/priority)
        precisions.append(sum(a.campaign is not None for a in top) / len(top))
    res.days_with_alerts = len(precisions)
    res.top10_precision = statistics.fmean(precisions) if precisions else None
    starts = {c.id: c.start_us for c in campaigns}
    res.ttd_s = {cid: (t - starts[cid]) / SECOND for cid, t in res.detected.items()}
    res.median_ttd_s = statistics.median(res.ttd_s.values()) if res.ttd_s else None
    if window is not None:
        _learning_and_days(res, alerts, window)
    return res


def _campaigns(res: TierResult, alerts: Sequence[AlertRec], campaigns: Sequence[Campaign]) -> None:
    """First alert, rules and (online model) features per campaign, wherever its alerts fall. Only alerts of
    severity low or higher count: an info alert (a habit, or context) pages nobody, so it catches nothing."""
    caught = (a for a in alerts if a.campaign is not None and severity_class(a.severity) != "info")
    for a in sorted(caught, key=lambda a: a.time_us):
        cid = a.campaign
        assert cid is not None
        res.detected.setdefault(cid, a.time_us)
        rules = res.campaign_rules.setdefault(cid, [])
        if a.rule_id not in rules:
            rules.append(a.rule_id)
        features = res.campaign_features.setdefault(cid, [])
        features.extend(f for f in a.features if f not in features)
    ids = {c.id for c in campaigns}
    res.detected = {k: v for k, v in res.detected.items() if k in ids}
    res.campaign_features = {k: v for k, v in res.campaign_features.items() if v}
    res.recall = len(res.detected) / len(campaigns) if campaigns else 0.0


def _learning_and_days(res: TierResult, alerts: Sequence[AlertRec], w: Window) -> None:
    for a in alerts:
        if a.campaign is None and w.start_us <= a.time_us < w.eval_start_us:
            res.learning_by_class[severity_class(a.severity)] += 1
            res.learning_by_rule[a.rule_id] += 1
    res.learning_per_million = _per_million(res.learning_by_class, w.benign_learning_events)
    n_days = max(1, -(-(w.end_us - w.start_us) // DAY_US))
    for d in range(n_days):
        t = w.start_us + d * DAY_US
        date = datetime.fromtimestamp(t / SECOND, UTC).strftime("%a %m-%d")
        stats = DayStats(d, date, "learning" if t < w.eval_start_us else "evaluation")
        if d < len(w.day_events):
            stats.events, stats.benign_events = w.day_events[d]
        res.days.append(stats)
    for a in alerts:
        d = (a.time_us - w.start_us) // DAY_US
        if 0 <= d < len(res.days):
            if a.campaign is None:
                res.days[d].benign[severity_class(a.severity)] += 1
                res.days[d].rules[a.rule_id] += 1
            else:
                res.days[d].attack += 1


def first_tier(tiers: Sequence[TierResult], campaign_id: str) -> str | None:
    """The first tier (in order: each adds to the previous) that catches the campaign."""
    return next((t.name for t in tiers if campaign_id in t.detected), None)


@dataclass
class RunResult:
    campaigns: list[Campaign]
    labels: dict[str, str]  # auditID -> campaign id
    tiers: list[TierResult]
    alerts: dict[str, list[AlertRec]]
    events: int
    benign_eval_events: int
    attack_events: int
    seconds: float
    notes: list[str]
    profile: ClusterProfile | None = None
    days: float = 0.0
    window: Window | None = None
    world: dict[str, Any] = field(default_factory=dict)  # what the report says about the simulated world
    #: alerts of the largest tier that the site tuning kept out: (rule, reason, attack alert?) -> count
    tuned_out: Counter[tuple[str, str, bool]] = field(default_factory=Counter)
