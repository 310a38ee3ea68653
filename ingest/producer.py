"""An asyncio face on librdkafka's producer (confluent-kafka): the webhook's records, made durable off the event loop.

librdkafka batches, compresses (lz4) and sends records in its own threads, outside the GIL, so the event loop only
hands each record over (`produce`, about a microsecond); with aiokafka, building and compressing the record batches on
the event loop cost more than everything else of a webhook batch together. The event loop itself serves librdkafka's
reports (`poll(0)`, every 2 ms while a delivery is awaited): the records handed over together are one
`Delivery`, which settles when every record is acknowledged by all in-sync replicas (acks=all, idempotent producer)
or at the first failure. Not a poll thread: confluent-kafka takes the GIL for each record's report, and a thread
doing so contends with the event loop for it once per record (~10 % of the loop's time at 60,000 records/s).
Keyed records are partitioned by librdkafka's `murmur2_random`, the Java client's murmur2 (`partition_index` in
ingest/kafka.py), so one principal's records land on one partition whichever process produced them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

log = logging.getLogger("auditwatch.ingest.kafka")

Record = tuple[str, bytes | None, bytes]  # topic, key, value
# How often the event loop serves librdkafka's reports: while a delivery is awaited (what it adds to a batch's
# latency: ~1 ms on average beside the 5-ms linger; every 1 ms, the wakes alone took 5 % of a core from an idle
# loop), and otherwise (client-wide errors, which a probe waits for)
_BUSY_POLL_S = 0.002
_IDLE_POLL_S = 0.1
_CLOSE_POLL_S = 0.005
_QUEUE_FULL_WAIT_S = 0.005  # librdkafka's queue is full: hand the rest over once it drained a little
_PROBE_STEP_S = 0.05
_ANY_PARTITION = -1  # the partitioner picks (murmur2 of the key)
_UNKNOWN_TOPIC = KafkaError.UNKNOWN_TOPIC_OR_PART


class Delivery:
    """The acknowledgements of records handed over together: awaited on the event loop, settled there (by the
    reports `RecordProducer` serves) when the last record is acknowledged or the first one fails."""

    __slots__ = ("future", "_expected", "_acks", "_error")

    def __init__(self, loop: asyncio.AbstractEventLoop, expected: int) -> None:
        self.future: asyncio.Future[None] = loop.create_future()
        self._expected = expected
        self._acks = itertools.count(1)  # one C call per report, cheaper than an attribute's read and write
        self._error: KafkaError | None = None
        if expected == 0:
            self.future.set_result(None)

    def report(self, error: KafkaError | None, _message: Message) -> None:
        """librdkafka's delivery report of one record (on the event loop: `RecordProducer` polls there)."""
        if error is not None:
            if self._error is None:
                self._error = error
                self._settle()
        elif next(self._acks) == self._expected:
            self._settle()

    def abandon(self) -> None:
        """Nobody awaits this delivery any more (the batch failed or timed out): its late reports are dropped."""
        self.future.cancel()

    def _settle(self) -> None:
        if self.future.done():
            return
        if self._error is not None:
            self.future.set_exception(KafkaException(self._error))
        else:
            self.future.set_result(None)


class _ClientLog:
    """librdkafka's own log lines (one per reconnection attempt while a broker is away) at DEBUG: what matters
    reaches the log as the webhook's 503s and the sink's warnings."""

    def log(self, _level: int, message: str, *args: Any) -> None:
        log.debug(message, *args)


class RecordProducer:
    """One librdkafka producer, its reports served on the event loop it is created on (in the process that uses
    it, after any fork)."""

    def __init__(self, bootstrap: str, *, timeout_s: float, max_record_bytes: int) -> None:
        self.bootstrap = bootstrap
        self.down = True  # no broker known to answer yet, or no topic; cleared by a probe or an acknowledged batch
        self.failed: KafkaError | None = None  # a fatal error: this producer can do nothing more
        self._brokers_down = 0  # times librdkafka said every broker connection is down
        self._producer = Producer({
            "bootstrap.servers": bootstrap,
            "client.id": "auditwatch-ingest",
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "lz4",
            # concurrent webhook batches share produce requests; each batch waits at most this. As ProducerPerformance
            # in bench/ingest.py: 5 rather than 2 ms took the broker ~25 % less CPU per event, for ~3 ms per POST
            "linger.ms": 5,
            "partitioner": "murmur2_random",  # the Java client's, for keyed records
            "message.max.bytes": max_record_bytes,
            "message.timeout.ms": max(1, int(timeout_s * 1000)),  # librdkafka gives up when the webhook does
            "reconnect.backoff.max.ms": 1000,  # a broker that is back is found within a second
            "queue.buffering.max.kbytes": 256 * 1024,  # bounded: a full queue makes batches wait (`send`)
            "logger": _ClientLog(),
            "error_cb": self._on_error,
        })  # fmt: skip
        self._awaited = 0  # deliveries being awaited: reports are then served every 2 ms
        self._wake = asyncio.Event()
        self._reports = asyncio.get_running_loop().create_task(self._serve_reports(), name="kafka-producer-reports")

    async def _serve_reports(self) -> None:
        poll, wake = self._producer.poll, self._wake
        while True:
            try:
                poll(0)
            except Exception:  # a callback's bug: batches would wait for reports nobody serves any more
                log.exception("serving the Kafka producer's reports failed")
            if self._awaited:
                await asyncio.sleep(_BUSY_POLL_S)
                continue
            wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_IDLE_POLL_S):
                    await wake.wait()

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's client-wide errors (served on the event loop with the reports)."""
        if error.fatal():
            self.failed = error
            log.warning("Kafka producer failed for good, replaced on the next batch: %s", error.str())
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.down = True
            self._brokers_down += 1
        else:
            log.debug("Kafka client: %s", error.str())

    async def probe(self, topics: Sequence[str], timeout_s: float) -> dict[str, KafkaError]:
        """A metadata round trip with the brokers per topic: the brokers' error about each of `topics` they answer
        without (UNKNOWN_TOPIC_OR_PART), none when they have them all; KafkaException when no broker answers within
        `timeout_s` (all topics together), or as soon as librdkafka says that every broker connection is down."""
        seen = self._brokers_down
        metadata = asyncio.ensure_future(asyncio.to_thread(self._missing, topics, time.monotonic() + timeout_s))
        metadata.add_done_callback(_retrieved)
        while not metadata.done():
            await asyncio.wait({metadata}, timeout=_PROBE_STEP_S)
            if self._brokers_down != seen and not metadata.done():
                raise KafkaException(KafkaError(KafkaError._ALL_BROKERS_DOWN))
        missing = metadata.result()
        # while a topic is missing the next batch probes first and gets its 503 at once, not at its deadline
        self.down = bool(missing)
        return missing

    def _missing(self, topics: Sequence[str], deadline: float) -> dict[str, KafkaError]:
        """The topics the brokers answer without, with their error (in a thread: librdkafka's call blocks)."""
        missing: dict[str, KafkaError] = {}
        for topic in topics:
            left = deadline - time.monotonic()
            if left <= 0:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
            found = self._producer.list_topics(topic, left).topics.get(topic)
            if found is None or not found.partitions or found.error is not None:
                error = found.error if found is not None else None
                missing[topic] = error if error is not None else KafkaError(_UNKNOWN_TOPIC)
        return missing

    async def send(self, records: Sequence[Record]) -> None:
        """Hand the records over and return when every one is acknowledged; KafkaException on the first failure.
        While librdkafka's queue is full this waits (the caller's deadline bounds it)."""
        delivery = Delivery(asyncio.get_running_loop(), len(records))
        produce, report = self._producer.produce, delivery.report
        self._awaited += 1
        self._wake.set()
        try:
            for topic, key, value in records:
                while True:
                    try:
                        produce(topic, value, key, _ANY_PARTITION, report)  # positional: keywords cost more per call
                        break
                    except BufferError:
                        await asyncio.sleep(_QUEUE_FULL_WAIT_S)
            await delivery.future
        except BaseException:
            delivery.abandon()
            raise
        finally:
            self._awaited -= 1
        self.down = False

    async def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (within `timeout_s`), drop the rest, stop serving reports."""
        self._reports.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reports
        left = await self._drain(timeout_s)
        if left:
            self._producer.purge()
            await self._drain(1.0)  # serves the purged records' reports: their deliveries fail
            log.debug("Kafka producer closed with %d records undelivered", left)

    async def _drain(self, timeout_s: float) -> int:
        """Serve reports until every record is delivered or failed, or `timeout_s` passed; the records left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                left = self._producer.flush(0)  # serves what is due
            except Exception:  # a callback's bug, as in _serve_reports: closing must still deliver the rest
                log.exception("serving the Kafka producer's reports failed")
                left = len(self._producer)
            if not left or loop.time() >= deadline:
                return left
            await asyncio.sleep(_CLOSE_POLL_S)


def _retrieved(task: asyncio.Future[Any]) -> None:
    """A probe's metadata call that ended after the probe gave up: its outcome no longer matters."""
    if not task.cancelled():
        task.exception()
