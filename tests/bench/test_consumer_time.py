"""bench/consumer_time.py: a detect process's batch phases read from its text log, within the measured interval."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

from bench.consumer_time import batch_phases, run_delay_s


def logged(at: float, fields: str) -> str:
    stamp = datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    return f"{stamp} INFO auditwatch.detect: batch records=5000 events=5000 {fields}"


def test_the_phases_of_the_batches_inside_the_interval_are_summed(tmp_path: Path) -> None:
    now = time.time()
    log = tmp_path / "detect.log"
    log.write_text("\n".join([
        logged(now - 60, "ms=900 poll_ms=500.0 detect_ms=300.0 write_ms=90.0 commit_ms=10.0"),  # before the interval
        logged(now - 5, "ms=120 poll_ms=10.0 detect_ms=100.0 write_ms=15.0 commit_ms=5.0"),
        f"{datetime.fromtimestamp(now - 4):%Y-%m-%d %H:%M:%S},000 WARNING auditwatch.detect: alert rule_id=x",
        logged(now - 3, 'ms=60 partitions="[1, 3]" poll_ms=20.0 detect_ms=50.0 write_ms=10.0 commit_ms=0.0'),
    ]))  # fmt: skip

    phases = batch_phases(log, now - 10, now)

    assert {k: round(v, 3) for k, v in phases.items()} == {
        "poll": 0.03,
        "detect": 0.15,
        "write": 0.025,
        "commit": 0.005,
    }


def test_the_time_waiting_for_a_core_is_read_for_every_thread() -> None:
    assert run_delay_s(os.getpid()) >= 0
    assert run_delay_s(2**22 + 7) == 0  # no such process
