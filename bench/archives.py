"""Replay of a gzipped apiserver log against the same log uncompressed, in one run.

    .venv/bin/python -m bench.archives [--size-mb 1024] [--repeat 1]

Writes an apiserver log backend file of realistic events (the simulation package) of about --size-mb MB, gzips it
(as `--audit-log-compress` rotation does), then replays both through the same pipeline (built-in rules,
no store) and reports events/s. The last line is
`gzip_events_per_s=<n> plain_events_per_s=<n> ratio=<r>` (the goal: gzip at >= 50 % of plain).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
import time
from pathlib import Path

import orjson

from auditwatch.replay import replay
from auditwatch.startup import tune_gc
from bench.arguments import at_least
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from simulation import ClusterProfile, benign_events


def write_log(path: Path, size_bytes: int) -> int:
    written = events = 0
    with path.open("wb") as out:
        for event in benign_events(ClusterProfile(nodes=50, seed=21)):
            line = orjson.dumps(event) + b"\n"
            out.write(line)
            written += len(line)
            events += 1
            if written >= size_bytes:
                break
    return events


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.archives", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=at_least(1), default=1024, help="size of the uncompressed log (default 1024)")
    parser.add_argument("--repeat", type=at_least(1), default=1, help="runs of each replay; the best counts")
    args = parser.parse_args()

    pipeline = Pipeline(load_rules(["builtin"]))
    tune_gc()
    with tempfile.TemporaryDirectory(prefix="auditwatch-bench-") as tmp:
        plain = Path(tmp) / "audit.log"
        packed = Path(tmp) / "audit-2026-11-20T10-00-00.000.log.gz"
        started = time.perf_counter()
        events = write_log(plain, args.size_mb * 1024 * 1024)
        with plain.open("rb") as src, gzip.open(packed, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        print(f"input: {events:,} events, {plain.stat().st_size / 1e6:,.0f} MB plain, "
              f"{packed.stat().st_size / 1e6:,.0f} MB gzip (made in {time.perf_counter() - started:.0f}s)")  # fmt: skip
        rates: dict[str, float] = {"plain": 0.0, "gzip": 0.0}
        for _ in range(args.repeat):
            for label, path in (("plain", plain), ("gzip", packed)):
                stats = replay([str(path)], pipeline.fresh())
                rates[label] = max(rates[label], stats.events / stats.seconds)
                print(
                    f"{label}: {stats.events:,} events in {stats.seconds:.1f}s, {stats.events / stats.seconds:,.0f}/s"
                )
        print(
            f"gzip_events_per_s={rates['gzip']:.0f} plain_events_per_s={rates['plain']:.0f} "
            f"ratio={rates['gzip'] / rates['plain']:.3f}"
        )


if __name__ == "__main__":
    main()
