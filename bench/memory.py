"""Memory of the full detection stack over a long stream: RSS and live state keys, sampled as it runs.

    .venv/bin/python -m bench.memory [--events 10000000] [--every 1000000]

Streams realistic events (the simulation package, a 20-node cluster, about 9 simulated days per 10 M events)
straight into the built-in pack (single-event, stateful and online-model rules) without files or a store,
and prints the process RSS and the number of live state keys every --every events. Flat RSS after the
windows and TTLs are reached is what "bounded state" means. The last line is
`events=<n> rss_mb_start=<n> rss_mb_end=<n> rss_mb_max=<n> state_keys_end=<n> events_per_s=<n>`.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from auditwatch.startup import tune_gc
from bench.arguments import at_least
from detectors.base import StateSized
from detectors.events import AuditEvent
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from simulation import ClusterProfile, benign_events


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def state_keys(pipeline: Pipeline) -> int:
    """Entries held by stateful detectors (the sizes of their per-key maps, as each one reports it)."""
    return sum(detector.state_keys() for detector in pipeline.stateful if isinstance(detector, StateSized))


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.memory", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=at_least(1), default=10_000_000, help="events to stream (default 10M)")
    parser.add_argument("--every", type=at_least(1), default=1_000_000, help="sample interval in events")
    args = parser.parse_args()

    pipeline = Pipeline(load_rules(["builtin"]))
    tune_gc()
    start_rss = max_rss = rss_mb()
    print(f"rules: {len(pipeline.detectors)} ({len(pipeline.stateful)} stateful); RSS at start {start_rss:,.0f} MB")
    started = time.perf_counter()
    alerts = 0
    n = 0
    for raw in benign_events(ClusterProfile(nodes=20, seed=31), count=args.events):
        alerts += len(pipeline.process(AuditEvent(raw=raw)))
        n += 1
        if n % args.every == 0:
            current = rss_mb()
            max_rss = max(max_rss, current)
            rate = n / (time.perf_counter() - started)
            line = f"{n:>12,} events  {raw['stageTimestamp'][:19]}  RSS {current:7,.0f} MB  "
            line += f"state keys {state_keys(pipeline):>9,}  alerts {alerts:>5,}  {rate:,.0f} events/s"
            print(line, flush=True)
    elapsed = time.perf_counter() - started
    end_rss = rss_mb()
    print(
        f"events={n} rss_mb_start={start_rss:.0f} rss_mb_end={end_rss:.0f} rss_mb_max={max(max_rss, end_rss):.0f} "
        f"state_keys_end={state_keys(pipeline)} events_per_s={n / elapsed:.0f}"
    )


if __name__ == "__main__":
    main()
