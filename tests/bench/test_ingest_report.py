"""bench.ingest's report says what it measured: one process, or one `ingest` command with its workers, and the CPU
the ingest and the generator used, beside the ratio to ProducerPerformance."""

from __future__ import annotations

from bench.ingest import measured_command, summary


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
