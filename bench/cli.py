"""Start-up time of the command line: `auditwatch --help` and `auditwatch serve --help` against `python -c pass`.

    .venv/bin/python -m bench.cli [--runs 15]

Each command runs --runs times in a fresh interpreter (the same one as the venv's `auditwatch` script), in turn,
so machine noise hits all of them alike; the median wall time of each is printed, and the last line is
`help_ms=<n> serve_help_ms=<n> python_ms=<n>`. The command line imports its heavy modules (FastAPI, SQLAlchemy,
aiokafka, river, pysigma) only in the command that runs, so help costs little more than the interpreter itself.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from bench.arguments import at_least

COMMANDS = {
    "python_ms": [sys.executable, "-c", "pass"],
    "help_ms": [sys.executable, "-m", "auditwatch.cli", "--help"],
    "serve_help_ms": [sys.executable, "-m", "auditwatch.cli", "serve", "--help"],
}


def wall_ms(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=60)
    return (time.perf_counter() - started) * 1000


def medians(runs: int) -> dict[str, float]:
    """The median wall time of each command, in milliseconds, over `runs` interleaved rounds."""
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for argv in COMMANDS.values():  # one untimed round: file caches warm for every command alike
        wall_ms(argv)
    for _ in range(runs):
        for name, argv in COMMANDS.items():
            times[name].append(wall_ms(argv))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=at_least(1), default=15, help="rounds (default 15)")
    args = parser.parse_args()
    result = medians(args.runs)
    for name, argv in COMMANDS.items():
        print(f"{' '.join(argv[1:]):>36}: median {result[name]:6.0f} ms over {args.runs} runs")
    print(" ".join(f"{name}={value:.0f}" for name, value in result.items()))


if __name__ == "__main__":
    main()
