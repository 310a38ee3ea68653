"""bench.ingest's report says what it measured: one process, or one `ingest` command with its workers, and the CPU
the ingest and the generator used, beside the ratio to ProducerPerformance; its baseline's topic is deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ingest import measured_command, producer_perf, summary
from bench.servers import services_env
from tests.support.services import kafka_bootstrap, topic_names


def run(rate: float, baseline: float, ingest_share: float) -> dict[str, float]:
    return {"rate": rate, "baseline": baseline, "p99_ms": 90.0, "generator_share": 0.03, "ingest_share": ingest_share}


def test_the_last_line_names_the_workers_and_their_cpu() -> None:
    runs = [run(90_000, 300_000, 1.52), run(96_000, 300_000, 1.61), run(99_000, 330_000, 1.70)]
    assert summary(runs, 2) == (
        "ingest_events_per_s=96000 producer_perf_events_per_s=300000 ratio=0.300 p99_ms=90 generator_cpu=0.03 "
        "ingest_workers=2 ingest_cpu=1.61"
    )


def test_the_command_measured_is_named() -> None:
    assert measured_command(1) == "one `ingest` process"
    assert measured_command(2) == "one `ingest` command with 2 workers"


@pytest.mark.integration
def test_producer_performance_is_measured_in_a_topic_of_its_own_that_is_deleted_after(tmp_path: Path) -> None:
    """The baseline writes into a fresh topic and deletes it: runs do not leave the broker tens of GB heavier (the
    local broker measured slower as its log grew)."""
    bootstrap = kafka_bootstrap()
    env = services_env()
    before = topic_names(bootstrap)

    rate = producer_perf(env | {"AUDITWATCH_KAFKA_BOOTSTRAP": bootstrap}, 2000, [b'{"n":%d}' % n for n in range(50)],
                         tmp_path)  # fmt: skip

    assert rate > 0
    assert not {t for t in topic_names(bootstrap) - before if t.startswith("bench-pp-")}
