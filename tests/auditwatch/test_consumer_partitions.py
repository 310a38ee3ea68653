"""Where `detect`'s consumer resumes a partition, and which fetched records it takes, against the real Kafka: a restored
offset within the partition is resumed at; one past its end (the topic was created again) is read from the start; with
no state, the group's commit says where, else the start."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from auditwatch.consumer_partitions import (
    Records,
    fresh_records,
    kafka_consumer,
    resume,
    resume_from_commit,
)
from ingest.kafka import TopicSpec, ensure_topics
from tests.support.services import kafka_bootstrap

pytestmark = pytest.mark.integration

RECORDS = 3
T = TypeVar("T")


async def _on_partition(body: Callable[[AIOKafkaConsumer, TopicPartition], Awaitable[T]], *, group: str = "") -> T:
    """Run `body` with a consumer of detect's settings assigned partition 0 of a new topic holding RECORDS records."""
    bootstrap = kafka_bootstrap()
    topic = f"audit-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(topic, 1, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(RECORDS):
            await producer.send_and_wait(topic, b"%d" % i, partition=0)
    finally:
        await producer.stop()
    consumer = kafka_consumer(bootstrap, group or f"g-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        return await body(consumer, tp)
    finally:
        await consumer.stop()


async def _fetch(consumer: AIOKafkaConsumer, tp: TopicPartition) -> Records:
    """The next records fetched (none within 20 s fails)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        batch = await consumer.getmany(tp, timeout_ms=1000)
        if batch:
            return batch
    raise AssertionError("no records fetched in 20 s")


async def _first_offset(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    return (await _fetch(consumer, tp))[tp][0].offset


def test_a_restored_offset_within_the_partition_is_resumed_at() -> None:
    async def body(consumer: AIOKafkaConsumer, tp: TopicPartition) -> tuple[int | None, int]:
        return await resume(consumer, tp, 2), await _first_offset(consumer, tp)

    assert asyncio.run(_on_partition(body)) == (2, 2)


def test_a_restored_offset_past_the_partitions_end_is_read_from_its_start(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="auditwatch.detect")

    async def body(consumer: AIOKafkaConsumer, tp: TopicPartition) -> tuple[int | None, int]:
        return await resume(consumer, tp, 10), await _first_offset(consumer, tp)

    assert asyncio.run(_on_partition(body)) == (None, 0)
    assert "its offset 10 is past the partition's end (3): the topic was created again" in caplog.text


def test_without_state_a_partition_starts_at_the_groups_commit_else_at_its_start() -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"

    async def body(consumer: AIOKafkaConsumer, tp: TopicPartition) -> tuple[int, int]:
        await resume_from_commit(consumer, tp)
        before = await _first_offset(consumer, tp)
        await consumer.commit({tp: 1})
        await resume_from_commit(consumer, tp)
        return before, await _first_offset(consumer, tp)

    assert asyncio.run(_on_partition(body, group=group)) == (0, 1)


def test_records_of_a_partition_not_ready_are_fetched_again_and_those_before_its_position_dropped() -> None:
    async def body(consumer: AIOKafkaConsumer, tp: TopicPartition) -> tuple[Records, int, list[int]]:
        consumer.seek(tp, 1)
        not_ready = fresh_records(consumer, await _fetch(consumer, tp), set(), {})
        again = await _first_offset(consumer, tp)  # sought back to the batch's first record
        consumer.seek(tp, 0)
        ready = fresh_records(consumer, await _fetch(consumer, tp), {tp}, {tp: 2})
        return not_ready, again, [r.offset for r in ready[tp]]

    assert asyncio.run(_on_partition(body)) == ({}, 1, [2])
