"""What machine a benchmark ran on, and how fast it ran that day.

This project's machine has been replaced under it and its speed drifts from day to day, so a rate measured on one
day says little about another. Each benchmark prints, beside its figures, the CPU model and the time one iteration
of a plain Python loop took just before: two rounds are comparable when their loop times are.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

LOOP_ITERATIONS = 5_000_000  # ~0.5 s here


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def loop_ns(iterations: int = LOOP_ITERATIONS) -> float:
    """Nanoseconds per iteration of `for i in range(n): x += i`, the interpreter's speed on this machine now."""
    x = 0
    started = time.perf_counter()
    for i in range(iterations):
        x += i
    return (time.perf_counter() - started) * 1e9 / iterations


def describe() -> str:
    """One line: CPU, cores, interpreter, the loop's speed now and the load average."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}; a plain loop {loop_ns():.0f} ns an iteration; load average {load}"
    )
