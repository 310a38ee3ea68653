"""Replay throughput of the full pipeline, against orjson parse-only of the same file, in one run.

    .venv/bin/python -m bench.replay [--events 200000] [--repeat 3] [--rules PACK|PATH]... [--rule-matching first|all]
    .venv/bin/python -m bench.replay --rules falco                                  # Falco's stock file
    .venv/bin/python -m bench.replay --rules builtin --rules falco --rules sigma    # all three together
    .venv/bin/python -m bench.replay --world noisy [--days 2]                       # the realistic stream

Generates N realistic events (the simulation package: controllers, kubelets, scheduler, humans, CI, health
checks, with a short attack story inside), writes them as JSON lines, then measures on that very file:
  parse:  read every line and orjson.loads it (the floor any Python replay pays);
  replay: `auditwatch replay`'s code path: read, decode, validate, built-in rules, alerts into SQLite.
With --world noisy the file is instead the detection benchmark's realistic stream (bench.detection: the
noisy world, 2 nodes, seed 1, --days of it with its attack campaigns in the second half), where the
stateful rules, the learned baselines and the online model all do real work; --events is ignored.
Each run measures both sides in turn, so a noisy neighbour hurts both alike; the figures are the medians of
--repeat runs. The last line is `replay_events_per_s=<n> parse_events_per_s=<n> ratio=<r>`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import orjson

from api.store import AlertStore
from auditwatch.replay import replay
from auditwatch.startup import tune_gc
from bench.arguments import at_least, loaded_rules, more_than
from bench.machine import describe
from detectors.loading.formats import LoadOptions
from detectors.pipeline import Pipeline
from simulation import (
    ClusterProfile,
    attack_events,
    benign_events,
    epoch_us,
    labelled_stream,
    plan_campaigns,
    write_jsonl,
)

DAY_S = 86_400


def make_events(path: Path, count: int) -> tuple[int, float]:
    profile = ClusterProfile(nodes=50, seed=3)
    events = list(benign_events(profile, count=count))
    attacks = [ev for _, ev in attack_events(profile, at=profile.start + timedelta(minutes=30))]
    middle = len(events) // 2
    events[middle:middle] = attacks
    written = write_jsonl(events, path)
    return written, path.stat().st_size / max(written, 1)


def make_noisy_events(path: Path, days: float) -> tuple[int, float]:
    """The detection benchmark's stream (bench.detection.run's defaults, seed 1), campaigns included."""
    profile = ClusterProfile(nodes=2, namespaces=("web", "payments", "checkout", "search"), humans=4, ci_accounts=2,
                             seed=1, realism="noisy")  # fmt: skip
    start_us = epoch_us(profile.start)
    end_us = start_us + int(days * DAY_S * 1_000_000)
    eval_start_us = start_us + int(days / 2 * DAY_S * 1_000_000)  # the second half, as bench.detection
    campaigns = plan_campaigns(profile, eval_start_us=eval_start_us, eval_end_us=end_us, seed=1)
    stream = labelled_stream(profile, duration_s=days * DAY_S, campaigns=campaigns, seed=profile.seed)
    written = write_jsonl((event for _, event, _ in stream), path)
    return written, path.stat().st_size / max(written, 1)


def parse_only(path: Path) -> tuple[int, float]:
    loads = orjson.loads
    started = time.perf_counter()
    n = 0
    with path.open("rb") as f:
        for line in f:
            loads(line)
            n += 1
    return n, time.perf_counter() - started


def full_replay(path: Path, pipeline: Pipeline, workdir: Path, run: int) -> tuple[int, float, int]:
    store = AlertStore(f"sqlite:///{workdir / f'bench-{run}.db'}")
    store.migrate()
    try:
        stats = replay([str(path)], pipeline, store=store, last_use=True)  # as `auditwatch replay` calls it
    finally:
        store.close()
    return stats.events, stats.seconds, stats.alerts


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=at_least(1), default=200_000, help="events to generate (default 200000)")
    parser.add_argument("--repeat", type=at_least(1), default=3, help="runs of each measurement; the medians count")
    parser.add_argument(
        "--world",
        choices=["simple", "noisy"],
        default="simple",
        help="the events: the simple "
        "simulation (--events of them) or the detection benchmark's noisy stream (--days of it)",
    )
    parser.add_argument("--days", type=more_than(0), default=2, help="days of the noisy stream (default 2)")
    parser.add_argument(
        "--rules", action="append", help="rule pack (builtin, falco, sigma), file or directory (repeatable; "
        "default: builtin). E.g. --rules falco, or --rules builtin --rules falco --rules sigma together",
    )  # fmt: skip
    parser.add_argument("--rule-matching", choices=["first", "all"], default="first", help="for Falco files")
    args = parser.parse_args()

    rules = args.rules or ["builtin"]
    pipeline = Pipeline(loaded_rules(parser, rules, LoadOptions(rule_matching=args.rule_matching)))
    tune_gc()  # as `auditwatch replay` does; both measurements below run in this same process state
    with tempfile.TemporaryDirectory(prefix="auditwatch-bench-") as tmp:
        workdir = Path(tmp)
        path = workdir / "events.jsonl"
        if args.world == "noisy":
            written, mean_size = make_noisy_events(path, args.days)
        else:
            written, mean_size = make_events(path, args.events)
        print(describe())
        print(f"input: {written:,} events, {path.stat().st_size / 1e6:.1f} MB, mean {mean_size:,.0f} B/event")
        print(f"rules: {', '.join(rules)} ({len(pipeline.detectors)} detectors, rule matching {args.rule_matching})")

        parse_rates = []
        replay_rates = []
        alerts = 0
        for run in range(args.repeat):
            n, secs = parse_only(path)
            parse_rates.append(n / secs)
            n, secs, alerts = full_replay(path, pipeline.fresh(), workdir, run)  # fresh state each run
            replay_rates.append(n / secs)
            print(f"run {run + 1}: parse {parse_rates[-1]:,.0f} events/s, replay {replay_rates[-1]:,.0f} events/s")
        parse_rate, replay_rate = statistics.median(parse_rates), statistics.median(replay_rates)
        print(f"alerts per replay: {alerts}")
        print("load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
        print(
            f"replay_events_per_s={replay_rate:.0f} parse_events_per_s={parse_rate:.0f} "
            f"ratio={replay_rate / parse_rate:.3f}"
        )


if __name__ == "__main__":
    main()
