"""Labelled detection benchmark: simulated benign traffic + injected attack campaigns, three rule tiers.

    .venv/bin/python -m bench.detection [--days 14] [--nodes 4] [--seed 1]     # default: ~7.5M events, ~6 min
    .venv/bin/python -m bench.detection --days 3 --nodes 3                        # quick run (~1 min)
    .venv/bin/python -m bench.detection --labels-out /tmp/labels      # also write labels.csv, campaigns.csv

The first half of the days is the baseline (no campaigns; stateful rules learn), the second half the
evaluation, chronological and never shuffled. Campaigns (simulation.plan_campaigns: Stratus Red Team,
Atomic Red Team, peirates and the simulator's attack story, each run by a dedicated attacker identity and
with a stolen token of an existing service account or user from an outside address) start at seeded
random times of the evaluation half. Every event is labelled by auditID -> campaign id.

Tiers load different rule files from detectors/rules/builtin/, chosen by their `type:`:
  rules     type match
  stateful  + threshold, distinct_count, new_terms, sequence
  ml        + anomaly (skipped with a note when no such rule file exists or it does not load)
One pass over the stream feeds every event, in time order, to one Pipeline per tier.

Metrics per tier (evaluation half only): campaign recall (campaigns with >= 1 alert on one of their
events), alerts per million benign events (alerts on unlabelled events / unlabelled events), precision of
the top 10 alerts of each day (by severity, then time; mean over days with alerts), median time to
detect (first alert's event time - campaign start). Last line, for the full stack:
`campaign_recall=<r> alerts_per_million=<n> top10_precision=<r> median_ttd_s=<n>`.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detectors.events import AuditEvent
from detectors.loading.loader import BUILTIN_DIR
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from simulation import SECOND, Campaign, ClusterProfile, epoch_us, labelled_stream, plan_campaigns, write_labels

STATEFUL_TYPES = ("threshold", "distinct_count", "new_terms", "sequence")
TIERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rules", ("match",)),
    ("stateful", ("match", *STATEFUL_TYPES)),
    ("ml", ("match", *STATEFUL_TYPES, "anomaly")),
)
DAY_US = 86400 * SECOND


@dataclass(frozen=True)
class AlertRec:
    time_us: int  # the alerted event's stageTimestamp
    severity: int
    rule_id: str
    rule_type: str
    audit_id: str
    campaign: str | None
    user: str = ""


@dataclass
class TierResult:
    name: str
    rule_files: int
    campaigns: int = 0
    detected: dict[str, int] = field(default_factory=dict)  # campaign id -> first alert time (µs)
    campaign_rules: dict[str, list[str]] = field(default_factory=dict)
    recall: float = 0.0
    benign_alerts: int = 0
    attack_alerts: int = 0
    alerts_per_million: float = 0.0
    alerts_per_day: float = 0.0
    top10_precision: float | None = None
    days_with_alerts: int = 0
    median_ttd_s: float | None = None
    ttd_s: dict[str, float] = field(default_factory=dict)
    benign_by_rule: Counter[str] = field(default_factory=Counter)
    benign_by_rule_user: Counter[str] = field(default_factory=Counter)
    note: str = ""


_TYPE_RE = re.compile(r"^type:\s*['\"]?([A-Za-z_]+)", re.M)


def rule_type(path: Path) -> str:
    """The top-level `type:` of an auditwatch rule file (match when absent); a regex, as YAML parsing of
    every file with its test events costs seconds."""
    m = _TYPE_RE.search(path.read_text())
    return m.group(1) if m else "match"


def tier_files(rule_dir: Path = BUILTIN_DIR) -> dict[str, tuple[list[Path], dict[str, str]]]:
    """tier name -> (rule files, rule id -> type). The ml tier is absent if there is no anomaly file."""
    files = sorted(p for p in rule_dir.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    typed = {p: rule_type(p) for p in files}
    out: dict[str, tuple[list[Path], dict[str, str]]] = {}
    for name, types in TIERS:
        chosen = [p for p, t in typed.items() if t in types]
        if name == "ml" and not any(typed[p] == "anomaly" for p in chosen):
            continue
        out[name] = (chosen, {p.stem: typed[p] for p in chosen})
    return out


def compute_metrics(
    name: str,
    alerts: Sequence[AlertRec],
    campaigns: Sequence[Campaign],
    *,
    eval_start_us: int,
    eval_end_us: int,
    benign_eval_events: int,
    rule_files: int = 0,
) -> TierResult:
    """The tier's figures from its alerts (which carry their event's campaign label, or None)."""
    res = TierResult(name, rule_files, campaigns=len(campaigns))
    ev_alerts = [a for a in alerts if eval_start_us <= a.time_us < eval_end_us]
    for a in ev_alerts:
        if a.campaign is None:
            res.benign_alerts += 1
            res.benign_by_rule[a.rule_id] += 1
            res.benign_by_rule_user[f"{a.rule_id} <- {a.user}"] += 1
        else:
            res.attack_alerts += 1
    # attack alerts before eval_start cannot exist (campaigns are planned in the evaluation half), but a
    # campaign alert is counted wherever it falls
    for a in sorted((a for a in alerts if a.campaign is not None), key=lambda a: a.time_us):
        res.detected.setdefault(a.campaign, a.time_us)  # type: ignore[arg-type]
        rules = res.campaign_rules.setdefault(a.campaign, [])  # type: ignore[arg-type]
        if a.rule_id not in rules:
            rules.append(a.rule_id)
    ids = {c.id for c in campaigns}
    res.detected = {k: v for k, v in res.detected.items() if k in ids}
    res.recall = len(res.detected) / len(campaigns) if campaigns else 0.0
    res.alerts_per_million = res.benign_alerts / benign_eval_events * 1e6 if benign_eval_events else 0.0
    days = max((eval_end_us - eval_start_us) / DAY_US, 1e-9)
    res.alerts_per_day = len(ev_alerts) / days
    by_day: dict[int, list[AlertRec]] = {}
    for a in ev_alerts:
        by_day.setdefault((a.time_us - eval_start_us) // DAY_US, []).append(a)
    precisions = []
    for day_alerts in by_day.values():
        top = sorted(day_alerts, key=lambda a: (-a.severity, a.time_us))[:10]
        precisions.append(sum(a.campaign is not None for a in top) / len(top))
    res.days_with_alerts = len(precisions)
    res.top10_precision = statistics.fmean(precisions) if precisions else None
    starts = {c.id: c.start_us for c in campaigns}
    res.ttd_s = {cid: (t - starts[cid]) / SECOND for cid, t in res.detected.items()}
    res.median_ttd_s = statistics.median(res.ttd_s.values()) if res.ttd_s else None
    return res


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


def run(
    *,
    days: float = 14,
    nodes: int = 4,
    seed: int = 1,
    namespaces: tuple[str, ...] = ("web", "payments", "checkout", "search"),
    humans: int = 4,
    ci_accounts: int = 2,
    techniques: list[str] | None = None,
    rule_dir: Path = BUILTIN_DIR,
    progress: bool = False,
) -> RunResult:
    t_start = time.perf_counter()
    profile = ClusterProfile(nodes=nodes, namespaces=namespaces, humans=humans, ci_accounts=ci_accounts, seed=seed)
    start_us = epoch_us(profile.start)
    end_us = start_us + int(days * DAY_US)
    eval_start_us = start_us + int(days / 2 * DAY_US)
    campaigns = plan_campaigns(
        profile, eval_start_us=eval_start_us, eval_end_us=end_us, seed=seed, techniques=techniques
    )
    notes: list[str] = []
    pipelines: list[tuple[str, Pipeline, dict[str, str], int]] = []
    for name, (files, types) in tier_files(rule_dir).items():
        try:
            dets = load_rules([str(p) for p in files])
        except Exception as exc:  # the ML rule type may not be registered yet
            notes.append(f"tier {name} skipped: its rules do not load ({str(exc).splitlines()[0]})")
            continue
        pipelines.append((name, Pipeline(dets), types, len(files)))
    if not any(n == "ml" for n, *_ in pipelines) and not any("tier ml" in n for n in notes):
        notes.append("tier ml skipped: no rule file of type anomaly in " + str(rule_dir))
    alerts: dict[str, list[AlertRec]] = {n: [] for n, *_ in pipelines}
    labels: dict[str, str] = {}
    n = benign_eval = attack = 0
    procs = [(p.process, alerts[name], types) for name, p, types, _ in pipelines]
    for ts, ev, cid in labelled_stream(profile, duration_s=days * 86400, campaigns=campaigns, seed=seed):
        n += 1
        if cid is not None:
            labels[ev["auditID"]] = cid
            attack += 1
        elif ts >= eval_start_us:
            benign_eval += 1
        event = AuditEvent(raw=ev, origin=f"simulation#{n}")
        for process, out, types in procs:
            for al in process(event):
                out.append(
                    AlertRec(ts, int(al.severity), al.rule_id, types.get(al.rule_id, "?"), al.audit_id, cid, al.user)
                )
        if progress and n % 500_000 == 0:
            el = time.perf_counter() - t_start
            day = (ts - start_us) / DAY_US
            print(f"  {n / 1e6:.1f}M events, day {day:.2f}/{days:g}, {n / el:,.0f} ev/s", file=sys.stderr)
    tiers = [
        compute_metrics(
            name,
            alerts[name],
            campaigns,
            eval_start_us=eval_start_us,
            eval_end_us=end_us,
            benign_eval_events=benign_eval,
            rule_files=nfiles,
        )
        for name, _, _, nfiles in pipelines
    ]
    return RunResult(campaigns, labels, tiers, alerts, n, benign_eval, attack, time.perf_counter() - t_start, notes)


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def report(res: RunResult, out: Any = sys.stdout) -> None:
    def p(*parts: object) -> None:
        print(*parts, file=out)

    p(
        f"events {res.events:,} (attack {res.attack_events:,}, benign in evaluation {res.benign_eval_events:,}) "
        f"in {res.seconds:.0f} s ({res.events / max(res.seconds, 1e-9):,.0f} ev/s, {len(res.tiers)} pipelines)"
    )
    for note in res.notes:
        p("note:", note)
    p("")
    p(
        f"{'tier':<10}{'files':>6}{'recall':>10}{'benign alerts':>15}{'per 1M':>9}{'alerts/day':>12}"
        f"{'top10 prec':>12}{'median TTD s':>14}"
    )
    for t in res.tiers:
        p(
            f"{t.name:<10}{t.rule_files:>6}{len(t.detected):>4}/{t.campaigns:<3} {t.recall:>4.2f}"
            f"{t.benign_alerts:>13}{t.alerts_per_million:>9.1f}{t.alerts_per_day:>12.1f}"
            f"{_fmt(t.top10_precision):>12}{_fmt(t.median_ttd_s, '.1f'):>14}"
        )
    for t in res.tiers:
        p(
            f"\n[{t.name}] benign alerts by rule (evaluation half): "
            + (", ".join(f"{r}={c}" for r, c in t.benign_by_rule.most_common()) or "none")
        )
        if t is res.tiers[-1] and t.benign_by_rule_user:
            p("  by rule and principal: " + ", ".join(f"{k} ={c}" for k, c in t.benign_by_rule_user.most_common(10)))
    p("\nper campaign (first alert after start in seconds, '-' = missed; rules that fired, full stack):")
    full = res.tiers[-1] if res.tiers else None
    for c in sorted(res.campaigns, key=lambda c: c.start_us):
        cells = "".join(f"{_fmt(t.ttd_s.get(c.id), '.1f') if c.id in t.ttd_s else '-':>10}" for t in res.tiers)
        rules = ",".join(full.campaign_rules.get(c.id, [])) if full else ""
        p(
            f"  {c.id:<48}{datetime.fromtimestamp(c.start_us / SECOND, UTC):%m-%d %H:%M} {c.actor[:34]:<35}"
            f"{len(c.audit_ids):>3} ev{cells}  {rules}"
        )
    if len(res.tiers) >= 2:
        by = {t.name: t for t in res.tiers}
        top, below = res.tiers[-1], res.tiers[-2]
        if top.name == "ml":
            only = sorted(set(top.detected) - set(below.detected))
            p(
                f"\nml contribution: campaigns only ml catches: {only or 'none'}; alerts it adds: "
                f"{top.benign_alerts - below.benign_alerts} benign, {top.attack_alerts - below.attack_alerts} attack"
            )
        if "rules" in by and "stateful" in by:
            only = sorted(set(by["stateful"].detected) - set(by["rules"].detected))
            p(
                f"stateful contribution over rules: campaigns {only or 'none'}; alerts added "
                f"{by['stateful'].benign_alerts - by['rules'].benign_alerts} benign, "
                f"{by['stateful'].attack_alerts - by['rules'].attack_alerts} attack"
            )
    if full:
        p(
            f"campaign_recall={full.recall:.3f} alerts_per_million={full.alerts_per_million:.1f} "
            f"top10_precision={_fmt(full.top10_precision)} median_ttd_s={_fmt(full.median_ttd_s, '.1f')}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.detection", description=__doc__.splitlines()[0] if __doc__ else None
    )
    ap.add_argument("--days", type=float, default=14, help="simulated days; the first half is the baseline")
    ap.add_argument("--nodes", type=int, default=4, help="cluster nodes (4: ~530k events/day)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rules-dir", type=Path, default=BUILTIN_DIR, help="where the tiers' rule files are")
    ap.add_argument("--labels-out", type=Path, help="write labels.csv and campaigns.csv into this directory")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    from auditwatch.startup import tune_gc

    tune_gc()
    res = run(days=args.days, nodes=args.nodes, seed=args.seed, rule_dir=args.rules_dir, progress=not args.quiet)
    report(res)
    if args.labels_out:
        write_labels(args.labels_out, res.labels, res.campaigns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
