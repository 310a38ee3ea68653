"""Replay throughput of the full pipeline, against orjson parse-only of the same file, in one run.

    .venv/bin/python -m bench.replay [--events 200000] [--repeat 3] [--rules PACK|PATH]... [--rule-matching first|all]
    .venv/bin/python -m bench.replay --rules falco                                  # Falco's stock file
    .venv/bin/python -m bench.replay --rules builtin --rules falco --rules sigma    # all three together

Generates N realistic events (the simulation package: controllers, kubelets, scheduler, humans, CI, health
checks, with a short attack story inside), writes them as JSON lines, then measures on that very file:
  parse:  read every line and orjson.loads it (the floor any Python replay pays);
  replay: `auditwatch replay`'s code path: read, decode, validate, built-in rules, alerts into SQLite.
Best of --repeat runs each, so a noisy neighbour hurts both sides alike. The last line is
`replay_events_per_s=<n> parse_events_per_s=<n> ratio=<r>`.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import orjson

from api.store import AlertStore
from auditwatch.replay import replay
from auditwatch.startup import tune_gc
from detectors.loading.formats import LoadOptions
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from simulation import ClusterProfile, attack_events, benign_events, write_jsonl


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def make_events(path: Path, count: int) -> tuple[int, float]:
    profile = ClusterProfile(nodes=50, seed=3)
    events = list(benign_events(profile, count=count))
    attacks = [ev for _, ev in attack_events(profile, at=profile.start + timedelta(minutes=30))]
    middle = len(events) // 2
    events[middle:middle] = attacks
    written = write_jsonl(events, path)
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
        stats = replay([str(path)], pipeline, store=store)
    finally:
        store.close()
    return stats.events, stats.seconds, stats.alerts


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events to generate (default 200000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best counts")
    parser.add_argument(
        "--rules", action="append", help="rule pack (builtin, falco, sigma), file or directory (repeatable; "
        "default: builtin). E.g. --rules falco, or --rules builtin --rules falco --rules sigma together",
    )  # fmt: skip
    parser.add_argument("--rule-matching", choices=["first", "all"], default="first", help="for Falco files")
    args = parser.parse_args()

    rules = args.rules or ["builtin"]
    pipeline = Pipeline(load_rules(rules, LoadOptions(rule_matching=args.rule_matching)))
    tune_gc()  # as `auditwatch replay` does; both measurements below run in this same process state
    with tempfile.TemporaryDirectory(prefix="auditwatch-bench-") as tmp:
        workdir = Path(tmp)
        path = workdir / "events.jsonl"
        written, mean_size = make_events(path, args.events)
        print(f"machine: {cpu_model()}, {platform.python_implementation()} {platform.python_version()}")
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
        best_parse, best_replay = max(parse_rates), max(replay_rates)
        print(f"alerts per replay: {alerts}")
        print(
            f"replay_events_per_s={best_replay:.0f} parse_events_per_s={best_parse:.0f} "
            f"ratio={best_replay / best_parse:.3f}"
        )


if __name__ == "__main__":
    main()
