"""The ingest producer (librdkafka) against real Kafka, never mocked: keyed records land on the partition the Java
client picks, a batch returns only once every record is in the log, and a Kafka that is away is said at once.
How a `Delivery` settles from librdkafka's reports is checked on its own, without a broker."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import KafkaError, KafkaException

from ingest.body import ReceivedEvent
from ingest.kafka import READY_CACHE_S, KafkaSink, TopicSpec, ensure_topics, partition_index
from ingest.producer import Delivery, RecordProducer
from ingest.webhook import SinkUnavailable
from tests.support.processes import free_port
from tests.support.services import kafka_bootstrap, topic_records

PARTITIONS = 6


def received(key: bytes, i: int) -> ReceivedEvent:
    return ReceivedEvent(b'{"n":%d}' % i, key, "ResponseComplete", f"id-{i}", f"test#items[{i}]")


def sink_for(bootstrap: str, topic: str, **options: Any) -> KafkaSink:
    return KafkaSink(bootstrap, topic=topic, dead_letter_topic=f"{topic}-dlq", **options)


@asynccontextmanager
async def producer_on_new_topic(name: str) -> AsyncIterator[tuple[RecordProducer, str]]:
    """A producer on the real broker and a fresh topic of PARTITIONS partitions named after `name`; closed after."""
    bootstrap = kafka_bootstrap()
    topic = f"{name}-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(topic, PARTITIONS, 1)])
    producer = RecordProducer(bootstrap, timeout_s=20, max_record_bytes=1 << 20)
    try:
        yield producer, topic
    finally:
        await producer.close()


@pytest.mark.integration
def test_keyed_records_land_on_the_partition_the_java_client_picks() -> None:
    bootstrap = kafka_bootstrap()
    topic = f"partitions-{uuid.uuid4().hex[:8]}"
    keys = [f"user-{i}@example.com".encode() for i in range(60)] + [b"system:node:ip-10-0-1-23", b"x"]
    keys += [f"unauthenticated:198.51.100.{i}".encode() for i in range(20)]

    async def send() -> None:
        await ensure_topics(bootstrap, [TopicSpec(topic, PARTITIONS, 1), TopicSpec(f"{topic}-dlq", 1, 1)])
        sink = sink_for(bootstrap, topic)
        try:
            await sink.accept_received([received(key, i) for i, key in enumerate(keys)], [])
        finally:
            await sink.close()

    asyncio.run(send())
    records = topic_records(bootstrap, topic, expect_at_least=len(keys))
    assert sorted(r.key for r in records) == sorted(keys)
    everywhere = list(range(PARTITIONS))
    for record in records:
        assert record.partition == partition_index(record.key, PARTITIONS)
        assert record.partition == DefaultPartitioner()(record.key, everywhere, everywhere)
    assert len({r.partition for r in records}) == PARTITIONS  # the keys spread: the check above means something


@pytest.mark.integration
def test_a_batch_returns_only_once_every_record_is_in_the_log() -> None:
    bootstrap = kafka_bootstrap()
    topic = f"acked-{uuid.uuid4().hex[:8]}"
    count = 2000

    async def send_then_count() -> int:
        await ensure_topics(bootstrap, [TopicSpec(topic, PARTITIONS, 1), TopicSpec(f"{topic}-dlq", 1, 1)])
        sink = sink_for(bootstrap, topic)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            await sink.accept_received([received(b"k%d" % (i % 50), i) for i in range(count)], [])
            # at once, before any wait: what the broker holds now
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
            return sum(ends.values())
        finally:
            await consumer.stop()
            await sink.close()

    assert asyncio.run(send_then_count()) == count


@pytest.mark.integration
def test_reports_are_served_on_the_event_loop_not_in_a_thread_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread serving them would take the GIL from the event loop once per record."""
    served_in: set[int] = set()
    report = Delivery.report

    def recording(delivery: Delivery, error: KafkaError | None, message: Any) -> None:
        served_in.add(threading.get_ident())
        report(delivery, error, message)

    monkeypatch.setattr(Delivery, "report", recording)

    async def send() -> None:
        async with producer_on_new_topic("reports") as (producer, topic):
            await producer.send([(topic, b"k%d" % (i % 7), b'{"n":%d}' % i) for i in range(500)])

    asyncio.run(send())
    assert served_in == {threading.get_ident()}  # asyncio.run's loop runs on this thread


@pytest.mark.integration
def test_a_failing_report_is_logged_and_the_next_batches_are_still_served(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A report callback that raises (a bug) must not stop the serving of reports: every later batch would wait
    for its deadline and be answered 503."""
    report = Delivery.report
    failed: list[bool] = []

    def failing_once(delivery: Delivery, error: KafkaError | None, message: Any) -> None:
        if not failed:
            failed.append(True)
            raise RuntimeError("a bug in a report")
        report(delivery, error, message)

    monkeypatch.setattr(Delivery, "report", failing_once)

    async def send() -> None:
        async with producer_on_new_topic("failing-report") as (producer, topic):
            with pytest.raises(TimeoutError):  # its one report was lost to the bug
                await asyncio.wait_for(producer.send([(topic, b"k", b'{"n":0}')]), 5)
            for _ in range(3):
                await asyncio.wait_for(producer.send([(topic, b"k", b'{"n":%d}' % i) for i in range(50)]), 10)

    with caplog.at_level(logging.ERROR, logger="auditwatch.ingest.kafka"):
        asyncio.run(send())
    assert failed and "serving the Kafka producer's reports failed" in caplog.text


@pytest.mark.integration
def test_a_report_that_fails_while_closing_is_logged_and_the_rest_is_still_delivered(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`close` serves the reports left (a batch given up on, as when a webhook request times out): a report that
    raises there (a bug) must neither fail the close nor keep it from delivering the other records."""
    report = Delivery.report
    calls: list[int] = []

    def failing_first(delivery: Delivery, error: KafkaError | None, message: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in a report")
        report(delivery, error, message)

    monkeypatch.setattr(Delivery, "report", failing_first)
    bootstrap = kafka_bootstrap()

    async def send_then_close() -> str:
        async with producer_on_new_topic("failing-close") as (producer, topic):
            batch = asyncio.ensure_future(producer.send([(topic, b"k", b'{"n":%d}' % i) for i in range(20)]))
            await asyncio.sleep(0)  # produced, not yet acknowledged (the producer lingers 5 ms)
            batch.cancel()
        return topic  # closed without an exception

    with caplog.at_level(logging.ERROR, logger="auditwatch.ingest.kafka"):
        topic = asyncio.run(send_then_close())
    assert len(calls) == 20 and "serving the Kafka producer's reports failed" in caplog.text
    assert sorted(r.value for r in topic_records(bootstrap, topic, expect_at_least=20)) == sorted(
        b'{"n":%d}' % i for i in range(20)
    )


@pytest.mark.integration
def test_closing_drops_what_no_broker_took_and_fails_its_batch_at_once() -> None:
    """With no broker to take them, `close` waits its timeout, then purges: the waiting batch fails then, not at
    its own deadline."""
    closed = f"127.0.0.1:{free_port()}"

    async def attempt() -> float:
        producer = RecordProducer(closed, timeout_s=60, max_record_bytes=1 << 20)
        batch = asyncio.ensure_future(producer.send([("audit", b"k", b'{"n":%d}' % i) for i in range(10)]))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await producer.close(timeout_s=0.5)
        with pytest.raises(KafkaException):
            await asyncio.wait_for(batch, 5)
        return time.monotonic() - started

    assert asyncio.run(attempt()) < 5


@pytest.mark.integration
def test_kafka_away_is_said_at_once_not_at_the_batch_deadline() -> None:
    closed = f"127.0.0.1:{free_port()}"

    async def attempt() -> tuple[str, float]:
        sink = sink_for(closed, "audit", send_timeout_s=30)
        started = time.monotonic()
        try:
            with pytest.raises(SinkUnavailable) as raised:
                await sink.accept_received([received(b"k", 0)], [])
            return str(raised.value), time.monotonic() - started
        finally:
            await sink.close()

    message, seconds = asyncio.run(attempt())
    assert message.startswith(f"Kafka at {closed} is unreachable: no broker answered")
    assert seconds < 30  # the probe's answer (librdkafka: every broker down), not the batch's deadline


def count_probes(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When each metadata round trip (the real one, with the real broker) started."""
    probe = RecordProducer.probe
    started: list[float] = []

    async def counted(self: RecordProducer, topics: Sequence[str], timeout_s: float) -> dict[str, KafkaError]:
        started.append(time.monotonic())
        return await probe(self, topics, timeout_s)

    monkeypatch.setattr(RecordProducer, "probe", counted)
    return started


@pytest.mark.integration
def test_readiness_is_kept_a_moment_so_a_probe_flood_makes_one_metadata_round_trip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    probes = count_probes(monkeypatch)

    async def flood(sink: KafkaSink) -> None:
        await sink.ready()
        await asyncio.gather(*(sink.ready() for _ in range(20)))  # concurrent probes
        for _ in range(20):  # and one after another
            await sink.ready()

    async def attempt() -> None:
        topic = f"ready-{uuid.uuid4().hex[:8]}"
        await ensure_topics(kafka_bootstrap(), [TopicSpec(topic, 1, 1), TopicSpec(f"{topic}-dlq", 1, 1)])
        sink = sink_for(kafka_bootstrap(), topic)
        try:
            await flood(sink)
            assert len(probes) == 1
            await asyncio.sleep(READY_CACHE_S + 0.1)  # kept no longer: a broker gone by now would be seen
            await flood(sink)
            assert len(probes) == 2
        finally:
            await sink.close()

    asyncio.run(attempt())


@pytest.mark.integration
def test_unreadiness_is_kept_a_moment_too_and_probed_again_after(monkeypatch: pytest.MonkeyPatch) -> None:
    probes = count_probes(monkeypatch)
    closed = f"127.0.0.1:{free_port()}"

    async def attempt() -> None:
        sink = sink_for(closed, "audit")
        try:
            for _ in range(2):
                for _ in range(10):
                    with pytest.raises(SinkUnavailable, match=f"Kafka at {closed} is unreachable"):
                        await sink.ready()
                assert len(probes) == 1
                await asyncio.sleep(READY_CACHE_S + 0.1)
                probes.clear()
        finally:
            await sink.close()

    asyncio.run(attempt())


def test_a_delivery_settles_on_its_last_acknowledgement() -> None:
    async def run() -> None:
        delivery = Delivery(asyncio.get_running_loop(), 3)
        for _ in range(2):
            delivery.report(None, None)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert not delivery.future.done()
        delivery.report(None, None)  # type: ignore[arg-type]
        await asyncio.wait_for(delivery.future, 1)

    asyncio.run(run())


def test_a_delivery_fails_on_its_first_failed_record_and_ignores_reports_once_abandoned() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        failed = Delivery(loop, 3)
        failed.report(None, None)  # type: ignore[arg-type]
        failed.report(KafkaError(KafkaError._MSG_TIMED_OUT), None)  # type: ignore[arg-type]
        with pytest.raises(KafkaException):
            await asyncio.wait_for(failed.future, 1)
        abandoned = Delivery(loop, 1)
        abandoned.abandon()
        abandoned.report(KafkaError(KafkaError._MSG_TIMED_OUT), None)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert abandoned.future.cancelled()
        assert Delivery(loop, 0).future.done()  # nothing to wait for

    asyncio.run(run())
