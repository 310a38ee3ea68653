"""bench/scale.py at a tiny size against the real Kafka and PostgreSQL: it drains the topic with 1 and with 2
detect consumers to the same alerts, drives 1 and 2 ingest processes, and reports every figure (no timing checked)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from bench.scale import measure
from tests.support.services import PG_URL, kafka_bootstrap, require

pytestmark = pytest.mark.integration


def bench_topics(bootstrap: str) -> set[str]:
    async def listed() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return {t for t in await admin.list_topics() if t.startswith("bench-scale-")}
        finally:
            await admin.close()

    return asyncio.run(listed())


def test_two_consumers_find_the_same_alerts_and_the_report_has_every_figure() -> None:
    bootstrap = kafka_bootstrap()
    require(PG_URL.split("@", 1)[1].split("/", 1)[0], "PostgreSQL")
    before = bench_topics(bootstrap)

    report = measure(3000, ingest_seconds=2.0, clients=2, body_events=2000)

    (one,), (two,) = report.of("detect", 1), report.of("detect", 2)
    assert report.events == 3000
    assert one.consumed == two.consumed == 3000  # the group's committed offsets reached the end of the topic
    assert one.alert_ids, "the noisy stream should raise some alerts"
    assert one.alert_ids == two.alert_ids  # deterministic ids: the same alerts whichever consumer had a partition
    assert set(two.cpu) == {"detect-1", "detect-2", "broker", "postgres"}
    for run in (one, two):  # where each consumer's time went, from its log's batch lines and /proc
        assert set(run.consumers) == {f"detect-{i + 1}" for i in range(run.processes)}
        # (at this size the batches may all end before the group is seen stable: the phases may be 0)
        assert all(t.waiting_for_core >= 0 and set(t.phases) == {"poll", "detect", "write", "commit"}
                   and min(t.phases.values()) >= 0 for t in run.consumers.values())  # fmt: skip
    ingest = report.of("ingest", 1) + report.of("ingest", 2)
    assert [run.processes for run in ingest] == [1, 2]
    for run in ingest:
        assert run.events > 0 and run.consumed >= run.events  # every acknowledged event is in the topic
        assert {f"ingest-{i + 1}" for i in range(run.processes)} | {"generator", "broker", "postgres"} == set(run.cpu)
    for run in report.runs:
        assert run.seconds > 0 and 0 <= run.machine_busy <= 1 and run.load_average >= 0 and run.per_cpu_second >= 0
    assert report.scaling("detect") >= 0 and report.scaling("ingest") >= 0
    assert "detect_scaling=" in report.summary() and "ingest_scaling=" in report.summary()
    assert any("ids identical" in line for line in report.lines())
    assert bench_topics(bootstrap) <= before  # its topics are deleted
