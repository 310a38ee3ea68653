"""Where a `detect` process's time went over a measured interval: for bench/scale.py, which must say what limits a
second consumer.

Two sources: the consumer's own log, whose line per batch gives the time spent waiting for records (`poll_ms`), in
detection, in the store's write and in the offset commit; and the kernel's scheduler statistics, which give the time
its threads were ready to run but waiting for a core (/proc/<pid>/task/*/schedstat, the second field) - on a machine
with fewer free cores than busy processes, that is where the time goes, and it shows up inside the phases above.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

PHASES = ("poll", "detect", "write", "commit")
_BATCH = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO auditwatch\.detect: batch (.*)$")
_FIELD = re.compile(r"(\w+)_ms=([\d.]+)")


def run_delay_s(pid: int) -> float:
    """Seconds the process's threads have spent runnable but waiting for a core, so far (0 when it is gone)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def batch_phases(log: Path, since: float, until: float) -> dict[str, float]:
    """Seconds per phase over the batches that the (text) log says ended between `since` and `until` (epoch s)."""
    totals = dict.fromkeys(PHASES, 0.0)
    for line in log.read_text(errors="replace").splitlines():
        found = _BATCH.match(line)
        if found is None:
            continue
        at = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time, as logged
        if not since <= at <= until:
            continue
        for name, ms in _FIELD.findall(found.group(2)):
            if name in totals:
                totals[name] += float(ms) / 1000
    return totals


@dataclass(frozen=True)
class ConsumerTime:
    """One consumer over the interval: seconds per batch phase, and cores' worth of waiting for a core."""

    phases: dict[str, float]
    waiting_for_core: float  # seconds waiting runnable / seconds of the interval
    seconds: float

    def line(self, name: str) -> str:
        shares = ", ".join(f"{phase} {spent / self.seconds:.0%}" for phase, spent in self.phases.items())
        return f"{name}: {shares} of the interval; waiting for a core {self.waiting_for_core:.2f}"


class ConsumerClock:
    """Started when the measured interval starts, stopped when it ends; then read per process."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._delays: dict[str, float] = {}
        self._started = (0.0, 0.0)  # (epoch, perf_counter)
        self._stopped = (0.0, 0.0)

    def start(self) -> None:
        self._delays = {name: run_delay_s(pid) for name, pid in self.pids.items()}
        self._started = (time.time(), time.perf_counter())

    def stop(self) -> None:
        self._delays = {name: run_delay_s(pid) - self._delays.get(name, 0.0) for name, pid in self.pids.items()}
        self._stopped = (time.time(), time.perf_counter())

    def read(self, logs: dict[str, Path]) -> dict[str, ConsumerTime]:
        seconds = max(self._stopped[1] - self._started[1], 1e-9)
        return {
            name: ConsumerTime(
                batch_phases(logs[name], self._started[0], self._stopped[0]), self._delays[name] / seconds, seconds
            )  # fmt: skip
            for name in self.pids
        }
