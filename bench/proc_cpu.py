"""CPU used by processes over an interval, from /proc: auditwatch's own, the Kafka broker's, PostgreSQL's.

For the scale benchmark (bench/scale.py), which must say what limits a second process on a small machine: the
figures are cores busy (1.0 = one core) per named group of processes, and the machine's busy share.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far; 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(parent: int) -> list[int]:
    """PIDs whose parent is `parent` (PostgreSQL's backends and workers under its postmaster)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class CpuMeter:
    """CPU used by named groups of processes between `start()` and `stop()`, in cores (1.0 = one core busy)."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self._start: dict[str, dict[int, float]] = {}
        self._machine = (0, 0)
        self._started = 0.0

    def _sample(self) -> dict[str, dict[int, float]]:
        return {name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in self.groups.items()}

    def start(self) -> None:
        self._start, self._machine, self._started = self._sample(), machine_jiffies(), time.perf_counter()

    def stop(self) -> tuple[dict[str, float], float]:
        """Cores busy per group, and the machine's busy share, since start()."""
        end, (busy, total), seconds = self._sample(), machine_jiffies(), time.perf_counter() - self._started
        used = {
            name: sum(cpu - self._start[name].get(pid, 0.0) for pid, cpu in pids.items()) / max(seconds, 1e-9)
            for name, pids in end.items()
        }
        return used, (busy - self._machine[0]) / max(total - self._machine[1], 1)


def just(pid: int | None) -> Callable[[], list[int]]:
    """A group of one process (none when it has no PID yet)."""
    return lambda: [pid] if pid else []


def broker_pid() -> int | None:
    cache = Path(os.environ.get("AUDITWATCH_CACHE", Path.home() / ".cache/auditwatch"))
    try:
        return int((cache / "kafka/kafka.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def postmaster_pid(db_url: str) -> int | None:
    """The PostgreSQL server's main process: the parent of our own backend (the server is on this machine)."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            backend = int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
        return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, sa.exc.SQLAlchemyError):
        return None
    finally:
        engine.dispose()


def shared_servers(db_url: str) -> dict[str, Callable[[], list[int]]]:
    broker, postmaster = broker_pid(), postmaster_pid(db_url)
    return {
        "broker": just(broker),
        "postgres": lambda: [postmaster, *children(postmaster)] if postmaster else [],
    }


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])
