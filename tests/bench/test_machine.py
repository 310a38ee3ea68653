"""bench/machine.py: the line each benchmark prints about the machine it ran on."""

from __future__ import annotations

import re

from bench.machine import cpu_model, describe, loop_ns


def test_the_loop_time_grows_with_the_work_it_times() -> None:
    short, long = loop_ns(200_000), loop_ns(2_000_000)
    assert 0 < short < 10_000 and 0 < long < 10_000  # nanoseconds per iteration, not per run
    # per iteration, so ten times the work is not ten times the figure (generous: a shared machine swings)
    assert long < short * 5


def test_the_line_names_the_cpu_the_interpreter_the_loop_and_the_load() -> None:
    line = describe()
    assert line.startswith(f"machine: {cpu_model()}, ")
    assert re.search(r"\d+ cores, CPython 3\.\d+\.\d+; a plain loop \d+ ns an iteration; load average [\d.]+ ", line)
