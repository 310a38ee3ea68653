"""Labelled detection benchmark: a simulated cluster's benign traffic + injected attack campaigns, per tier.

    .venv/bin/python -m bench.detection                          # 14 days x 2 nodes, seeds 1 and 2 (~8-30 min)
    .venv/bin/python -m bench.detection --days 2 --no-holdout --rate-hours 2   # quick run (~1-2 min)
    .venv/bin/python -m bench.detection --world clean            # the historical, clean benign world
    .venv/bin/python -m bench.detection --json /tmp/detection.json --labels-out /tmp/labels

The benign side is ``ClusterProfile(realism="noisy")`` by default: a real cluster's traffic that rules flag
(GitOps and CI applying workloads, RBAC, CRDs and webhooks; operators writing Secrets; developers exec-ing;
SREs debugging; nodes coming and going; see simulation.noisy). The first half of the days is the
learning period (no campaigns; stateful rules learn), the second half the evaluation, chronological and
never shuffled. Campaigns (simulation.plan_campaigns) start at seeded random times of the evaluation half:
loud ones from Stratus Red Team, Atomic Red Team, peirates and the simulator's story, each run by a
dedicated attacker and with a stolen credential from outside; and quiet ones that borrow an identity of
the benign world from its usual place (simulation.attacks.quiet). Every event is labelled by auditID.

Tiers load different rule files from detectors/rules/builtin/, chosen by their `type:`:
  rules     type match
  stateful  + threshold, distinct_count, new_terms, sequence
  ml        + anomaly (skipped with a note when no such rule file exists or it does not load)
  +site     the largest tier's alerts through the site tuning file (docs/tuning.md), as a real site runs it
One pass over the stream feeds every event, in time order, to one Pipeline per tier. The site tuning file
is, unless --tuning names one or --no-tuning, the one each world's operator would write on day one,
generated from its site model (bench.site_tuning: its own registry and add-on vendors, its CI and GitOps
deployers and operators, the operators that read Secrets cluster-wide) and written beside the report.

Figures per tier (evaluation half unless said): campaign recall; benign alerts per million benign events,
medium-or-higher and low apart (and over the learning half); precision of each day's top 10 alerts (in the
order the product shows a day first: api.ranking); median time to detect (first alert's event time - campaign
start); per day of the whole window, benign and attack alerts and the rules that make them; per campaign, the
first tier that catches it, with its rules (and the online model's top features). The benign alerts a 50-node
cluster would raise per day, before and after the learning period, scale each half's rate per million by the
event rate of a 50-node profile measured over --rate-hours of simulation. With --holdout-seed, a second world
of another seed runs too and both are printed: thresholds tuned on one seed must hold on the other. Last line,
for the full stack (with the site tuning) of the first seed: `campaign_recall=<r> alerts_per_million=<n>
top10_precision=<r> median_ttd_s=<n> medium_per_million=<n> low_per_million=<n>`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.ranking import context_only
from bench.arguments import at_least, more_than, rule_dir, rule_files
from bench.detection_metrics import DAY_US, AlertRec, RunResult, TierResult, Window, compute_metrics
from bench.detection_report import SITE_TIER, FiftyNodes, compare, report, to_json
from bench.site_tuning import write_site_tuning
from detectors.alerts import Alert
from detectors.events import AuditEvent
from detectors.loading.loader import BUILTIN_DIR
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.tuning.tuning import Tuning, load_tuning
from simulation import (
    REALISMS,
    Campaign,
    ClusterProfile,
    benign_events,
    epoch_us,
    labelled_stream,
    plan_campaigns,
    write_labels,
)

__all__ = ["SITE_TIER", "AlertRec", "RunResult", "TierResult", "compute_metrics", "report", "run"]

STATEFUL_TYPES = ("threshold", "distinct_count", "new_terms", "sequence")
TIERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rules", ("match",)),
    ("stateful", ("match", *STATEFUL_TYPES)),
    ("ml", ("match", *STATEFUL_TYPES, "anomaly")),
)
NAMESPACES = ("web", "payments", "checkout", "search")


_TYPE_RE = re.compile(r"^type:\s*['\"]?([A-Za-z_]+)", re.M)


def rule_type(path: Path) -> str:
    """The top-level `type:` of an auditwatch rule file (match when absent); a regex, as YAML parsing of
    every file with its test events costs seconds."""
    m = _TYPE_RE.search(path.read_text())
    return m.group(1) if m else "match"


def tier_files(rule_dir: Path = BUILTIN_DIR) -> dict[str, tuple[list[Path], dict[str, str]]]:
    """tier name -> (rule files, rule id -> type). The ml tier is absent if there is no anomaly file."""
    files = sorted(rule_files(rule_dir))
    typed = {p: rule_type(p) for p in files}
    out: dict[str, tuple[list[Path], dict[str, str]]] = {}
    for name, types in TIERS:
        chosen = [p for p, t in typed.items() if t in types]
        if name == "ml" and not any(typed[p] == "anomaly" for p in chosen):
            continue
        out[name] = (chosen, {p.stem: typed[p] for p in chosen})
    return out


@dataclass(frozen=True)
class Tier:
    name: str
    files: int
    rule_types: dict[str, str]  # rule id (= file stem) -> type


def _pipelines(rule_dir: Path, notes: list[str], separate: bool) -> list[tuple[Pipeline, list[Tier]]]:
    """Pipelines and the tiers each one serves.

    Separate: one pipeline per tier. Shared (the default): one pipeline of the largest tier that loads,
    serving every tier whose rules it holds; a lower tier's alerts are the alerts of its own rules. That
    is exact as long as detectors do not see each other's alerts (Pipeline.process runs each on the event
    alone); tests/bench check both ways agree.
    """
    tiers = tier_files(rule_dir)
    out: list[tuple[Pipeline, list[Tier]]] = []
    for name, (files, types) in reversed(list(tiers.items())):
        if out and not separate:
            break
        try:
            dets = load_rules([str(p) for p in files])
        except Exception as exc:  # the ML rule type may not be registered yet
            notes.append(f"tier {name} skipped: its rules do not load ({str(exc).splitlines()[0]})")
            continue
        served = [Tier(name, len(files), types)]
        if not separate:
            served = [Tier(n, len(f), t) for n, (f, t) in tiers.items() if set(t) <= set(types)]
        out.insert(0, (Pipeline(dets), served))
    if not any(t.name == "ml" for _, served in out for t in served) and not any("tier ml" in n for n in notes):
        notes.append("tier ml skipped: no rule file of type anomaly in " + str(rule_dir))
    return out


def _features(details: Any) -> tuple[str, ...]:
    """The online model's top features of an alert (details["top_features"], most unusual first)."""
    top = details.get("top_features") if hasattr(details, "get") else None
    return tuple(top) if isinstance(top, dict) else ()


@dataclass
class _Replayed:
    """What one pass over the labelled stream counted, and each pipeline's alerts."""

    found: list[list[AlertRec]]
    labels: dict[str, str] = field(default_factory=dict)  # auditID -> campaign id
    events: int = 0
    benign_eval: int = 0
    benign_learning: int = 0
    attack: int = 0
    day_events: list[list[int]] = field(default_factory=list)  # per day: [all events, benign events]
    tuned: list[AlertRec] = field(default_factory=list)  # the largest tier's alerts that the site tuning keeps
    tuned_out: Counter[tuple[str, str, bool]] = field(default_factory=Counter)  # (rule, reason, attack?) -> kept out


def _replay(
    profile: ClusterProfile,
    days: float,
    campaigns: list[Campaign],
    pipelines: list[tuple[Pipeline, list[Tier]]],
    eval_start_us: int,
    progress: bool,
    tuning: Tuning | None = None,
) -> _Replayed:
    """Feed every event of the labelled stream, in time order, to every pipeline; the last pipeline's alerts
    also go through ``tuning`` (as a pipeline with it would: the tuning only ever acts on alerts)."""
    t_start, start_us = time.perf_counter(), epoch_us(profile.start)
    out = _Replayed([[] for _ in pipelines])
    out.day_events = [[0, 0] for _ in range(max(1, -(-int(days * DAY_US) // DAY_US)))]
    procs = [(p.process, found, served[-1].rule_types) for (p, served), found in zip(pipelines, out.found, strict=True)]
    top = out.found[-1] if pipelines else None
    stream = labelled_stream(profile, duration_s=days * 86400, campaigns=campaigns, seed=profile.seed)
    for ts, ev, cid in stream:
        out.events += 1
        day = out.day_events[min((ts - start_us) // DAY_US, len(out.day_events) - 1)]
        day[0] += 1
        if cid is not None:
            out.labels[ev["auditID"]] = cid
            out.attack += 1
        else:
            day[1] += 1
            if ts >= eval_start_us:
                out.benign_eval += 1
            else:
                out.benign_learning += 1
        event = AuditEvent(raw=ev, origin=f"simulation#{out.events}")
        for process, found, types in procs:
            for al in process(event):
                rtype, features = types.get(al.rule_id, "?"), _features(al.details)
                principal = al.user or (al.source_ips[-1] if al.source_ips else "")
                rec = AlertRec(
                    ts,
                    int(al.severity),
                    al.rule_id,
                    rtype,
                    al.audit_id,
                    cid,
                    al.user,
                    features,
                    principal,
                    context_only(al.details),
                )
                found.append(rec)
                if tuning is not None and found is top:
                    _tune(tuning, al, rec, out)
        if progress and out.events % 500_000 == 0:
            rate, day_no = out.events / (time.perf_counter() - t_start), (ts - start_us) / DAY_US
            print(f"  {out.events / 1e6:.1f}M events, day {day_no:.2f}/{days:g}, {rate:,.0f} ev/s", file=sys.stderr)
    return out


def _tune(tuning: Tuning, alert: Alert, rec: AlertRec, out: _Replayed) -> None:
    """Keep ``rec`` (with the tuned severity) in ``out.tuned`` if the tuning lets ``alert`` through, else count
    why it was kept out, attack alerts apart."""
    before = Counter({k: n for k, n in tuning.suppressed.counts.items() if k[0] == alert.rule_id})
    kept = tuning.apply([alert])
    if kept:
        out.tuned.append(dataclasses.replace(rec, severity=int(kept[0].severity)))
        return
    for (rule, reason), n in tuning.suppressed.counts.items():
        if rule == alert.rule_id and n > before[(rule, reason)]:
            out.tuned_out[(rule, reason, rec.campaign is not None)] += 1


def run(
    *,
    days: float = 14,
    nodes: int = 2,
    seed: int = 1,
    namespaces: tuple[str, ...] = NAMESPACES,
    humans: int = 4,
    ci_accounts: int = 2,
    realism: str = "noisy",
    unannotated_share: float = 0.0,
    techniques: list[str] | None = None,
    rule_dir: Path = BUILTIN_DIR,
    progress: bool = False,
    separate_pipelines: bool = False,
    tuning: Path | None = None,
    site_tuning_dir: Path | None = None,
) -> RunResult:
    """One world's figures per tier; with a site tuning file, one more tier, SITE_TIER: the largest tier's
    alerts through it. The file is ``tuning``, or else, with ``site_tuning_dir``, the one the world's site
    model gives (bench.site_tuning), written there as site-tuning-seed<seed>.yaml."""
    t_start = time.perf_counter()
    profile = ClusterProfile(
        nodes=nodes,
        namespaces=namespaces,
        humans=humans,
        ci_accounts=ci_accounts,
        seed=seed,
        realism=realism,
        unannotated_share=unannotated_share,
    )
    if tuning is None and site_tuning_dir is not None:
        tuning = write_site_tuning(profile, site_tuning_dir / f"site-tuning-seed{seed}.yaml")
    start_us = epoch_us(profile.start)
    end_us = start_us + int(days * DAY_US)
    eval_start_us = start_us + int(days / 2 * DAY_US)
    campaigns = plan_campaigns(
        profile, eval_start_us=eval_start_us, eval_end_us=end_us, seed=seed, techniques=techniques
    )
    notes: list[str] = []
    pipelines = _pipelines(rule_dir, notes, separate_pipelines)
    tuned = load_tuning(str(tuning), pipelines[-1][0].detectors) if tuning is not None and pipelines else None
    if tuned is not None:
        notes.extend(f"tuning: {w}" for w in tuned.warnings)
    done = _replay(profile, days, campaigns, pipelines, eval_start_us, progress, tuned)
    alerts: dict[str, list[AlertRec]] = {}
    files: dict[str, int] = {}
    for (_, served), found in zip(pipelines, done.found, strict=True):
        for tier in served:
            alerts[tier.name] = [a for a in found if a.rule_id in tier.rule_types]
            files[tier.name] = tier.files
    if tuned is not None:
        alerts[SITE_TIER], files[SITE_TIER] = done.tuned, pipelines[-1][1][-1].files
    day_events = tuple((a, b) for a, b in done.day_events)
    window = Window(start_us, eval_start_us, end_us, done.benign_eval, done.benign_learning, day_events)
    tiers = [
        compute_metrics(
            name,
            alerts[name],
            campaigns,
            eval_start_us=eval_start_us,
            eval_end_us=end_us,
            benign_eval_events=done.benign_eval,
            rule_files=files[name],
            window=window,
        )
        for name in alerts
    ]
    site = profile.site
    world = {
        "realism": realism,
        "seed": seed,
        "days": days,
        "nodes": nodes,
        "namespaces": list(namespaces),
        "humans": humans,
        "ci_accounts": ci_accounts,
        "unannotated_share": unannotated_share,
        "organisation": site.company,
        "registry": site.registry,
        "events_per_day": done.events / days if days else 0.0,
        "pipelines": len(pipelines),
        "tuning": None if tuning is None else str(tuning),
    }
    seconds = time.perf_counter() - t_start
    return RunResult(
        campaigns,
        done.labels,
        tiers,
        alerts,
        done.events,
        done.benign_eval,
        done.attack,
        seconds,
        notes,
        profile,
        days,
        window,
        world,
        done.tuned_out,
    )


def events_per_day(profile: ClusterProfile, hours: float) -> float:
    """The benign event rate of ``profile``, measured over its first ``hours`` (from its start, 08:00 UTC)."""
    count = sum(1 for _ in benign_events(profile, duration_s=hours * 3600))
    return count * 24 / hours


def _site_tuning_dir(given: Path | None, json_out: Path | None) -> Path:
    return given or (json_out.parent if json_out else Path("site-tuning"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.detection",
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # `--rules` must not be taken for `--rules-dir`
    )
    ap.add_argument("--days", type=more_than(0), default=14, help="simulated days; the first half is for learning")
    ap.add_argument("--nodes", type=at_least(1), default=2, help="cluster nodes (default %(default)s)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the world and its campaigns")
    holdout = ap.add_mutually_exclusive_group()
    holdout.add_argument("--holdout-seed", type=int, default=2, help="a second world, not to tune on (default 2)")
    holdout.add_argument("--no-holdout", action="store_true", help="run the first seed only")
    ap.add_argument("--world", choices=REALISMS, default="noisy", help="benign world (default %(default)s)")
    ap.add_argument(
        "--unannotated-share", type=float, default=0.0, help="share of requests written without annotations"
    )
    ap.add_argument("--scale-nodes", type=at_least(0), default=50, help="benign alerts per day at this size (0: none)")
    ap.add_argument("--rate-hours", type=more_than(0), default=24, help="hours simulated for that size's event rate")
    ap.add_argument("--rules-dir", type=rule_dir, default=BUILTIN_DIR, help="where the tiers' rule files are")
    ap.add_argument(
        "--separate-pipelines", action="store_true", help="one pipeline per tier (slower; the same figures today)"
    )
    tune = ap.add_mutually_exclusive_group()
    tune.add_argument("--tuning", type=Path, metavar="FILE", help="site tuning file for every seed (default: each "
                      "world's own, generated from its site model: bench.site_tuning)")  # fmt: skip
    tune.add_argument("--no-tuning", action="store_true", help=f"no site tuning (no tier {SITE_TIER})")
    ap.add_argument("--site-tuning-dir", type=Path, metavar="DIR", help="where the generated site tuning files "
                    "go (default: beside --json, else ./site-tuning)")  # fmt: skip
    ap.add_argument("--labels-out", type=Path, help="write labels.csv and campaigns.csv (first seed) here")
    ap.add_argument("--json", type=Path, metavar="OUT", help="write every figure as JSON")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    if not 0 <= args.unannotated_share <= 1:
        ap.error("--unannotated-share must be in [0, 1]")
    from auditwatch.startup import tune_gc

    tune_gc()
    seeds = [args.seed] if args.no_holdout or args.holdout_seed == args.seed else [args.seed, args.holdout_seed]
    common = {
        "days": args.days,
        "nodes": args.nodes,
        "realism": args.world,
        "rule_dir": args.rules_dir,
        "separate_pipelines": args.separate_pipelines,
        "tuning": None if args.no_tuning else args.tuning,
        "site_tuning_dir": None if args.no_tuning or args.tuning else _site_tuning_dir(args.site_tuning_dir, args.json),
    }
    runs = [run(seed=s, unannotated_share=args.unannotated_share, progress=not args.quiet, **common) for s in seeds]
    fifty = None
    if args.scale_nodes > 0:
        profile = runs[0].profile
        assert profile is not None
        big = dataclasses.replace(profile, nodes=args.scale_nodes)
        fifty = FiftyNodes(args.scale_nodes, args.rate_hours, events_per_day(big, args.rate_hours))
    for i, res in enumerate(runs):
        if i:
            print(f"\n{'=' * 40} holdout seed {res.world['seed']} (not used for tuning) {'=' * 40}\n")
        report(res, fifty=fifty)
    if len(runs) > 1:
        compare(runs)
    if args.labels_out:
        write_labels(args.labels_out, runs[0].labels, runs[0].campaigns)
    if args.json:
        args.json.write_text(json.dumps({"runs": [to_json(r, fifty) for r in runs]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
