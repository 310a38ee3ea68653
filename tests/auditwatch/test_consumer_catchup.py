"""`detect`'s consumer draining a backlog, against the real Kafka and PostgreSQL: once caught up, its committed
offsets (which follow the state checkpoints) reach the end of the topic soon, not a checkpoint interval later; and a
drained partition does not hold up the fetches of a busy one."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from api.store import AlertStore
from auditwatch.consumer import Consumer
from detectors.alerts import Alert
from detectors.events import AuditEvent
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from ingest.kafka import TopicSpec, ensure_topics
from tests.support.events import lease_event
from tests.support.services import committed, kafka_bootstrap

pytestmark = pytest.mark.integration


def leases(count: int, *, pad: int = 0) -> list[dict[str, Any]]:
    """`count` lease updates of one node, each its own event (`pad` bytes of annotation make records bigger)."""
    base = lease_event()
    events = []
    for i in range(count):
        event = copy.deepcopy(base)
        event["auditID"] = f"1ea5e000-0000-4000-8000-{i:012d}"
        if pad:
            event.setdefault("annotations", {})["pad"] = "x" * pad
        events.append(event)
    return events


async def publish(bootstrap: str, topic: str, per_partition: list[list[dict[str, Any]]]) -> None:
    await ensure_topics(bootstrap, [TopicSpec(topic, len(per_partition), 1)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        for partition, events in enumerate(per_partition):
            for raw in events:
                await producer.send(topic, orjson.dumps(raw), partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def run_until(consumer: Consumer, done: Callable[[], Any], timeout_s: float) -> float:
    """Run the consumer until `done()` (awaited when it is a coroutine function) holds; the seconds it took."""
    task = asyncio.create_task(consumer.run())
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout_s and not task.done():
            result = done()
            if await result if asyncio.iscoroutine(result) else result:
                return time.monotonic() - started
            await asyncio.sleep(0.2)
        raise AssertionError(f"not done in {timeout_s}s")
    finally:
        consumer.stop()
        await task


@pytest.fixture
def store(pg_url: str) -> Iterator[AlertStore]:
    store = AlertStore(pg_url)
    store.migrate()
    try:
        yield store
    finally:
        store.close()


def test_once_caught_up_the_state_and_offsets_are_checkpointed_without_waiting_the_interval(store: AlertStore) -> None:
    bootstrap = kafka_bootstrap()
    topic, group = f"audit-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    events = leases(300)
    asyncio.run(publish(bootstrap, topic, [events]))
    pipeline = Pipeline(load_rules(["builtin"]))
    assert pipeline.stateful  # offsets are committed only with state checkpoints
    consumer = Consumer(bootstrap=bootstrap, topic=topic, group=group, pipeline=pipeline, store=store,
                        checkpoint_every_s=600, idle_checkpoint_s=0.5)  # fmt: skip

    async def caught_up() -> bool:
        return await committed(bootstrap, group, topic) == len(events)

    asyncio.run(run_until(consumer, caught_up, timeout_s=60))  # the interval (600 s) never came

    position, _ = store.load_state(f"kafka:{group}:{topic}:0") or (None, {})
    assert position == len(events) and consumer.stats.events == len(events)


@dataclass(frozen=True)
class Deliberate:
    """A detector that takes its time over each event, as the whole pack does over a big batch."""

    id: str = "deliberate"
    stages: frozenset[str] | None = None
    resources: frozenset[str] | None = None
    seconds: float = 0.0002

    def detect(self, event: AuditEvent) -> list[Alert]:
        time.sleep(self.seconds)
        return []


def test_a_drained_partition_does_not_hold_up_a_busy_ones_fetches(
    store: AlertStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Partition 1 has one record, partition 0 a backlog of ~48 MB: most fetches find records of partition 0 still
    buffered, so they ask for partition 1 alone, which has nothing; the broker holds such a fetch for the fetch wait,
    and partition 0's next records come after it. Polls that returned records must not have waited the broker's
    default 500 ms."""
    bootstrap = kafka_bootstrap()
    topic, group = f"audit-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    backlog = leases(6000, pad=7800)  # ~8 KB records: a partition fetch (4 MB) holds ~500 of them, ~100 ms of work
    asyncio.run(publish(bootstrap, topic, [backlog, leases(1)]))
    # batches smaller than a fetch: partition 0's records stay buffered over several polls, as in a busy consumer
    consumer = Consumer(bootstrap=bootstrap, topic=topic, group=group, pipeline=Pipeline([Deliberate()]),
                        store=store, max_records=100)  # fmt: skip
    caplog.set_level(logging.INFO, logger="auditwatch.detect")

    asyncio.run(run_until(consumer, lambda: consumer.stats.events == len(backlog) + 1, timeout_s=120))

    polls = [float(r.__dict__["poll_ms"]) for r in caplog.records if r.getMessage() == "batch"]
    assert len(polls) >= 12
    held = [ms for ms in polls[1:] if ms >= 250]  # the first poll waits for the partitions' assignment
    assert len(held) <= 2, f"polls held by a fetch of the drained partition: {held} of {polls}"
