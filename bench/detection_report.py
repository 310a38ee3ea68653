"""Printing (tables) and exporting (JSON) the labelled detection benchmark's figures."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from bench.detection_metrics import SEVERITY_CLASSES, RunResult, TierResult, first_tier
from simulation import QUIET, SECOND, Campaign


@dataclass(frozen=True)
class FiftyNodes:
    """The event rate of a bigger cluster of the same world, to turn rates per million into alerts per day."""

    nodes: int
    hours: float  # simulated to measure it
    events_per_day: float

    def per_day(self, per_million: float) -> float:
        return per_million * self.events_per_day / 1e6


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def _when(us: int) -> str:
    return datetime.fromtimestamp(us / SECOND, UTC).strftime("%a %m-%d %H:%M")


def report(res: RunResult, out: TextIO = sys.stdout, *, fifty: FiftyNodes | None = None) -> None:
    def p(*parts: object) -> None:
        print(*parts, file=out)

    _world(res, p)
    p("")
    p(
        f"{'tier':<10}{'files':>6}{'recall':>12}{'med+/1M':>9}{'low/1M':>8}{'info/1M':>8}{'benign med+/low':>17}"
        f"{'top10 prec':>11}{'median TTD s':>13}"
    )
    for t in res.tiers:
        pm = t.per_million
        counts = f"{t.benign_by_class['medium+']}/{t.benign_by_class['low']}"
        p(
            f"{t.name:<10}{t.rule_files:>6}{len(t.detected):>4}/{t.campaigns:<3} {t.recall:>4.2f}"
            f"{pm.get('medium+', 0):>9.1f}{pm.get('low', 0):>8.1f}{pm.get('info', 0):>8.1f}{counts:>17}"
            f"{_fmt(t.top10_precision):>11}{_fmt(t.median_ttd_s, '.1f'):>13}"
        )
    full = res.tiers[-1] if res.tiers else None
    if full is not None:
        _rules(full, res, p)
        _days(full, p)
    _campaigns(res, p)
    _contributions(res, p)
    if fifty is not None:
        _fifty(res, fifty, p)
    if full is not None:
        pm = full.per_million
        p(
            f"campaign_recall={full.recall:.3f} alerts_per_million={full.alerts_per_million:.1f} "
            f"top10_precision={_fmt(full.top10_precision)} median_ttd_s={_fmt(full.median_ttd_s, '.1f')} "
            f"medium_per_million={pm.get('medium+', 0):.1f} low_per_million={pm.get('low', 0):.1f}"
        )


def _world(res: RunResult, p: Any) -> None:
    w = res.world
    if w:
        p(
            f"world: {w['realism']}, seed {w['seed']}: {w['days']:g} days x {w['nodes']} nodes, "
            f"{len(w['namespaces'])} namespaces, {w['humans']} developers, {w['ci_accounts']} CI accounts; "
            f"organisation {w['organisation']}, registry {w['registry']}"
            + (f"; {w['unannotated_share']:.0%} of requests without annotations" if w["unannotated_share"] else "")
        )
    learning = res.window.benign_learning_events if res.window else 0
    p(
        f"events {res.events:,} ({w.get('events_per_day', 0):,.0f}/day; attack {res.attack_events:,}; benign: "
        f"learning {learning:,}, evaluation {res.benign_eval_events:,}) in {res.seconds:.0f} s "
        f"({res.events / max(res.seconds, 1e-9):,.0f} ev/s, {w.get('pipelines', len(res.tiers))} pipelines)"
    )
    quiet = sum(c.technique in QUIET for c in res.campaigns)
    since = f" from {_when(res.window.eval_start_us)}" if res.window else ""
    loud = len(res.campaigns) - quiet
    p(f"campaigns: {len(res.campaigns)} ({loud} loud, {quiet} quiet) in the evaluation half{since}")
    for note in res.notes:
        p("note:", note)


def _rules(t: TierResult, res: RunResult, p: Any) -> None:
    rules = sorted(set(t.benign_by_rule) | set(t.learning_by_rule), key=lambda r: (-t.benign_by_rule[r], r))
    p(f"\n[{t.name}] benign alerts by rule, evaluation half (learning half in brackets):")
    if not rules:
        p("  none")
    for r in rules:
        per_m = t.benign_by_rule[r] / res.benign_eval_events * 1e6 if res.benign_eval_events else 0.0
        sev = t.rule_severity.get(r, "?")
        p(f"  {r:<46}{sev:>8}{t.benign_by_rule[r]:>8}{per_m:>9.1f}/1M  [{t.learning_by_rule[r]}]")
    if t.benign_by_rule_user:
        p("  top rule <- principal: " + ", ".join(f"{k} ={c}" for k, c in t.benign_by_rule_user.most_common(8)))


def _days(t: TierResult, p: Any) -> None:
    if not t.days:
        return
    p(f"\n[{t.name}] per day: benign alerts (medium+, low), attack alerts, the rules making the benign ones")
    p(f"  {'day':>3} {'date':<10}{'half':<11}{'events':>10}{'med+':>6}{'low':>6}{'attack':>7}  top rules")
    for d in t.days:
        top = ", ".join(f"{r}={c}" for r, c in d.rules.most_common(4)) or "-"
        p(
            f"  {d.day:>3} {d.date:<10}{d.half:<11}{d.events:>10,}{d.benign['medium+']:>6}{d.benign['low']:>6}"
            f"{d.attack:>7}  {top}"
        )


def _campaigns(res: RunResult, p: Any) -> None:
    names = "".join(f"{t.name:>10}" for t in res.tiers)
    p("\nper campaign: seconds to detect per tier ('-' missed), first tier, its rules (features of the model):")
    p(f"  {'campaign':<48}{'start':<16}{'actor':<36}{'ev':>4}{names}  first")
    for c in sorted(res.campaigns, key=lambda c: c.start_us):
        cells = "".join(f"{_fmt(t.ttd_s.get(c.id), '.1f') if c.id in t.ttd_s else '-':>10}" for t in res.tiers)
        first = first_tier(res.tiers, c.id)
        tier = next((t for t in res.tiers if t.name == first), None)
        why = ",".join(tier.campaign_rules.get(c.id, [])) if tier else ""
        if tier is not None and c.id in tier.campaign_features:
            why += " [" + ",".join(tier.campaign_features[c.id][:4]) + "]"
        p(f"  {c.id:<48}{_when(c.start_us):<16}{c.actor[:35]:<36}{len(c.audit_ids):>4}{cells}  {first or '-'}: {why}")


def _contributions(res: RunResult, p: Any) -> None:
    for below, top in zip(res.tiers, res.tiers[1:], strict=False):
        only = sorted(set(top.detected) - set(below.detected))
        extra = top.benign_alerts - below.benign_alerts
        per_m = extra / res.benign_eval_events * 1e6 if res.benign_eval_events else 0.0
        p(
            f"{top.name} over {below.name}: campaigns {only or 'none'}; benign alerts +{extra} (+{per_m:.1f} per 1M), "
            f"attack alerts +{top.attack_alerts - below.attack_alerts}"
        )


def _fifty(res: RunResult, f: FiftyNodes, p: Any) -> None:
    p(
        f"\nbenign alerts per day of a {f.nodes}-node cluster: each half's rate per million x {f.events_per_day:,.0f} "
        f"events/day (this world with {f.nodes} nodes, measured over its first {f.hours:g} h)"
    )
    p(f"  {'tier':<10}{'learning half: med+':>20}{'low':>8}{'evaluation half: med+':>23}{'low':>8}")
    for t in res.tiers:
        lp, ep = t.learning_per_million, t.per_million
        p(
            f"  {t.name:<10}{f.per_day(lp.get('medium+', 0)):>20,.0f}{f.per_day(lp.get('low', 0)):>8,.0f}"
            f"{f.per_day(ep.get('medium+', 0)):>23,.0f}{f.per_day(ep.get('low', 0)):>8,.0f}"
        )


def compare(runs: Sequence[RunResult], out: TextIO = sys.stdout) -> None:
    """Each tier's headline figures side by side, one column group per seed."""
    seeds = [r.world.get("seed", "?") for r in runs]
    print(
        f"\nseeds side by side ({', '.join(f'seed {s}' for s in seeds)}): recall, med+/1M, low/1M, top10, TTD", file=out
    )
    for i, t in enumerate(runs[0].tiers):
        cells = []
        for r in runs:
            u = r.tiers[i] if i < len(r.tiers) else None
            if u is None:
                cells.append("n/a")
                continue
            pm = u.per_million
            cells.append(
                f"{len(u.detected)}/{u.campaigns} {pm.get('medium+', 0):7.1f} {pm.get('low', 0):7.1f} "
                f"{_fmt(u.top10_precision, '.2f'):>5} {_fmt(u.median_ttd_s, '.1f'):>6}"
            )
        print(f"  {t.name:<10}" + "   |   ".join(cells), file=out)


def _campaign_json(c: Campaign, tiers: Sequence[TierResult]) -> dict[str, Any]:
    first = first_tier(tiers, c.id)
    tier = next((t for t in tiers if t.name == first), None)
    return {
        "id": c.id,
        "technique": c.technique,
        "quiet": c.technique in QUIET,
        "variant": c.variant,
        "mitre": list(c.mitre),
        "actor": c.actor,
        "src_ip": c.src_ip,
        "start": c.start.isoformat(),
        "end": c.end.isoformat(),
        "events": len(c.audit_ids),
        "first_tier": first,
        "ttd_s": {t.name: t.ttd_s.get(c.id) for t in tiers},
        "rules": tier.campaign_rules.get(c.id, []) if tier else [],
        "features": tier.campaign_features.get(c.id, []) if tier else [],
    }


def _tier_json(t: TierResult, fifty: FiftyNodes | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": t.name,
        "rule_files": t.rule_files,
        "campaigns": t.campaigns,
        "detected": len(t.detected),
        "recall": t.recall,
        "benign_alerts": t.benign_alerts,
        "attack_alerts": t.attack_alerts,
        "alerts_per_million": t.alerts_per_million,
        "per_million": t.per_million,
        "learning_per_million": t.learning_per_million,
        "benign_by_class": dict(t.benign_by_class),
        "learning_by_class": dict(t.learning_by_class),
        "top10_precision": t.top10_precision,
        "median_ttd_s": t.median_ttd_s,
        "benign_by_rule": dict(t.benign_by_rule.most_common()),
        "learning_by_rule": dict(t.learning_by_rule.most_common()),
        "rule_severity": t.rule_severity,
        "days": [
            {
                "day": d.day,
                "date": d.date,
                "half": d.half,
                "events": d.events,
                "benign_events": d.benign_events,
                "benign": {c: d.benign[c] for c in SEVERITY_CLASSES},
                "attack": d.attack,
                "rules": dict(d.rules.most_common()),
            }
            for d in t.days
        ],
    }
    if fifty is not None:
        out["per_day_at_scale"] = {
            half: {c: fifty.per_day(rates.get(c, 0)) for c in SEVERITY_CLASSES}
            for half, rates in (("learning", t.learning_per_million), ("evaluation", t.per_million))
        }
    return out


def to_json(res: RunResult, fifty: FiftyNodes | None = None) -> dict[str, Any]:
    return {
        "world": res.world,
        "events": res.events,
        "attack_events": res.attack_events,
        "benign_eval_events": res.benign_eval_events,
        "benign_learning_events": res.window.benign_learning_events if res.window else None,
        "seconds": res.seconds,
        "notes": res.notes,
        "scale": None
        if fifty is None
        else {"nodes": fifty.nodes, "hours": fifty.hours, "events_per_day": fifty.events_per_day},
        "tiers": [_tier_json(t, fifty) for t in res.tiers],
        "campaigns": [_campaign_json(c, res.tiers) for c in sorted(res.campaigns, key=lambda c: c.start_us)],
    }
