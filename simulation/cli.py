"""``python -m simulation``: write a labelled stream of simulated audit events (events JSONL + labels CSV)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from simulation.attacks.campaigns import TECHNIQUES, VARIANTS, Campaign, plan_campaigns
from simulation.benign import benign_events
from simulation.clock import SECOND, epoch_us
from simulation.cluster import REALISMS, ClusterProfile
from simulation.demo import demo_events
from simulation.files import write_jsonl, write_labels
from simulation.labelled import labelled_stream

_EXAMPLES = """examples:
  python -m simulation --out /tmp/events.jsonl.gz --count 100000                  # benign only
  python -m simulation --out /tmp/day.jsonl.gz --days 1 --nodes 4 --campaigns all  # + labels.csv, campaigns.csv
  python -m simulation --out /tmp/two.jsonl --duration 7200 --campaigns stratus.privileged-pod,atomic.T1613
  python -m simulation --out /tmp/real.jsonl.gz --days 2 --realism noisy --campaigns all  # a real cluster's noise
  python -m simulation --demo --out auditwatch/data/demo-events.jsonl.gz          # the bundled demo sample
"""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m simulation",
        description="Write simulated Kubernetes audit events (audit.k8s.io/v1) as JSON lines; with --campaigns, "
        "attack campaigns are merged in and labelled (labels.csv: auditID -> campaign id, campaigns.csv).",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--out", type=Path, help="output .jsonl (or .jsonl.gz) path")
    ap.add_argument("--gzip", action="store_true", help="gzip the output (implied by a .gz suffix)")
    ap.add_argument(
        "--seed", type=int, default=None, help="seed of the cluster and campaigns (default 1; 7 for --demo)"
    )
    length = ap.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, help="simulated seconds")
    length.add_argument("--days", type=float, help="simulated days")
    ap.add_argument("--count", type=int, help="at most this many events (default 10000 without a duration)")
    cluster = ap.add_argument_group("cluster")
    cluster.add_argument(
        "--nodes", type=int, default=ClusterProfile.nodes, help="number of nodes (default %(default)s)"
    )
    cluster.add_argument(
        "--namespaces",
        default=",".join(ClusterProfile.namespaces),
        help="application namespaces, comma-separated (default %(default)s)",
    )
    cluster.add_argument(
        "--humans", type=int, default=ClusterProfile.humans, help="kubectl users (default %(default)s)"
    )
    cluster.add_argument(
        "--ci-accounts", type=int, default=ClusterProfile.ci_accounts, help="CI service accounts (default %(default)s)"
    )
    cluster.add_argument(
        "--realism",
        choices=REALISMS,
        default=ClusterProfile.realism,
        help="clean: nothing a rule should flag; noisy: a real cluster's benign traffic (default %(default)s)",
    )
    cluster.add_argument(
        "--unannotated-share",
        type=float,
        default=0.0,
        help="share of requests written without annotations, as some exporters do (default %(default)s)",
    )
    attacks = ap.add_argument_group("attack campaigns")
    attacks.add_argument("--campaigns", help="'all' or technique ids, comma-separated (needs --duration or --days)")
    attacks.add_argument(
        "--variants",
        default=",".join(VARIANTS[:2]),
        help=f"who runs each technique, comma-separated among {', '.join(VARIANTS)} (default %(default)s)",
    )
    attacks.add_argument(
        "--attack-from",
        type=float,
        default=0.5,
        help="campaigns start after this fraction of the window, the baseline before it (default %(default)s)",
    )
    attacks.add_argument("--labels-out", type=Path, help="directory of labels.csv and campaigns.csv (default: --out's)")
    attacks.add_argument("--list-techniques", action="store_true", help="print the technique ids and exit")
    ap.add_argument("--demo", action="store_true", help="write the demo sample (20 min, 10 nodes, the attack story)")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.list_techniques:
        for tech, about in TECHNIQUES.items():
            print(f"{tech:<34} {about}")
        return 0
    if args.out is None:
        ap.error("--out is required")
    use_gzip = bool(args.gzip or args.out.suffix == ".gz")
    duration = args.days * 86400 if args.days is not None else args.duration
    if args.demo:
        if args.campaigns:
            ap.error("--demo has its own attack story; it takes no --campaigns")
        n = write_jsonl(demo_events(7 if args.seed is None else args.seed), args.out, gzip_=use_gzip)
        print(f"wrote {n} events to {args.out}", file=sys.stderr)
        return 0
    if not 0 <= args.unannotated_share <= 1:
        ap.error("--unannotated-share must be in [0, 1]")
    profile = ClusterProfile(
        nodes=args.nodes,
        namespaces=tuple(ns for ns in args.namespaces.split(",") if ns),
        humans=args.humans,
        ci_accounts=args.ci_accounts,
        seed=1 if args.seed is None else args.seed,
        realism=args.realism,
        unannotated_share=args.unannotated_share,
    )
    if not args.campaigns:
        count = args.count if args.count is not None or duration is not None else 10_000
        n = write_jsonl(benign_events(profile, duration_s=duration, count=count), args.out, gzip_=use_gzip)
        print(f"wrote {n} events to {args.out}", file=sys.stderr)
        return 0
    if duration is None or args.count is not None:
        ap.error("--campaigns needs --duration or --days, and no --count")
    campaigns = _plan(ap, args, profile, duration)
    labels: dict[str, str] = {}
    n = write_jsonl(_labelled_events(profile, duration, campaigns, labels), args.out, gzip_=use_gzip)
    paths = write_labels(args.labels_out or args.out.parent, labels, campaigns)
    print(f"wrote {n} events to {args.out}, {len(labels)} of them by {len(campaigns)} campaigns", file=sys.stderr)
    print(f"wrote labels to {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0


def _plan(
    ap: argparse.ArgumentParser, args: argparse.Namespace, profile: ClusterProfile, duration: float
) -> list[Campaign]:
    techniques = list(TECHNIQUES) if args.campaigns == "all" else args.campaigns.split(",")
    variants = tuple(args.variants.split(","))
    unknown = [t for t in techniques if t not in TECHNIQUES] + [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown technique or variant: {', '.join(unknown)} (see --list-techniques)")
    if not 0 <= args.attack_from < 1:
        ap.error("--attack-from must be in [0, 1)")
    start = epoch_us(profile.start)
    return plan_campaigns(
        profile,
        eval_start_us=start + int(duration * args.attack_from * SECOND),
        eval_end_us=start + int(duration * SECOND),
        seed=profile.seed,
        techniques=techniques,
        variants=variants,
    )


def _labelled_events(
    profile: ClusterProfile, duration: float, campaigns: list[Campaign], labels: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """The stream's events; the campaign id of each attack event goes into ``labels``."""
    for _, ev, cid in labelled_stream(profile, duration_s=duration, campaigns=campaigns, seed=profile.seed):
        if cid is not None:
            labels[ev["auditID"]] = cid
        yield ev
