"""`auditwatch detect`: the Kafka consumer group that runs the pipeline and writes alerts.

At least once, with idempotent effects: a batch's alerts (and rejected records) are written in one
transaction with upserts, and only then are the batch's offsets committed. A crash in between makes
Kafka redeliver the batch, and the upsert absorbs it. While the database is down the consumer keeps
retrying the same batch with backoff and commits nothing; it catches up when the database returns.
On a rebalance, the partitions being revoked are handed over only after the batch in flight is stored
and committed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError

from api.store import AlertStore, StoreError
from detectors.alerts import Alert
from detectors.errors import EventError
from detectors.events import AuditEvent, Rejected, parse_body
from detectors.pipeline import Pipeline

log = logging.getLogger("auditwatch.detect")


@dataclass
class DetectStats:
    records: int = 0
    events: int = 0
    alerts: int = 0
    new_alerts: int = 0
    rejected: int = 0
    batches: int = 0
    store_retries: int = 0
    commit_failures: int = 0
    partitions: set[int] = field(default_factory=set)


def decode_record(record: ConsumerRecord[bytes, bytes]) -> tuple[list[AuditEvent], list[Rejected]]:
    origin = f"kafka:{record.topic}/{record.partition}@{record.offset}"
    if record.value is None:
        return [], [Rejected(origin, "empty record", None)]
    try:
        return parse_body(record.value, origin=origin)
    except EventError as exc:
        return [], [Rejected(origin, str(exc), record.value[:4096].decode("utf-8", "replace"))]


class _HandOver(ConsumerRebalanceListener):  # type: ignore[misc]
    """Revocation waits for the batch in flight (stored and committed) before partitions move."""

    def __init__(self, lock: asyncio.Lock, on_assign: Callable[[set[TopicPartition]], None]) -> None:
        self.lock = lock
        self.on_assign = on_assign

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            # bounded: if the batch cannot finish (store down), hand over anyway; nothing was committed
            await asyncio.wait_for(self.lock.acquire(), 30)
        except TimeoutError:
            log.warning("handing over partitions with a batch still in flight; it will be redelivered")
        else:
            self.lock.release()
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.on_assign(assigned)
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))


class Detector:
    """One member of the consumer group."""

    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        group: str,
        pipeline: Pipeline,
        store: AlertStore,
        max_records: int = 5000,
        backoff_cap_s: float = 30.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.pipeline = pipeline
        self.store = store
        self.max_records = max_records
        self.backoff_cap_s = backoff_cap_s
        self.stats = DetectStats()
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()

    def stop(self) -> None:
        self._stop.set()

    def _on_assign(self, assigned: set[TopicPartition]) -> None:
        self.stats.partitions = {tp.partition for tp in assigned}

    async def _store(self, alerts: list[Alert], rejected: list[Rejected]) -> bool:
        """Write until it works (or we are stopped); True when stored."""
        delay = 0.5
        while True:
            try:
                self.stats.new_alerts += await asyncio.to_thread(self.store.write, alerts, rejected)
                return True
            except StoreError as exc:
                self.stats.store_retries += 1
                log.warning("alert store unavailable, retrying in %.1fs (offsets not committed): %s", delay, exc)
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                    return False
                except TimeoutError:
                    delay = min(self.backoff_cap_s, delay * 2) * (0.8 + 0.4 * random.random())

    async def _process(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        alerts: list[Alert] = []
        rejected: list[Rejected] = []
        offsets: dict[TopicPartition, int] = {}
        for tp, records in batch.items():
            for record in records:
                events, bad = decode_record(record)
                for event in events:
                    alerts.extend(self.pipeline.process(event))
                rejected.extend(bad)
                self.stats.events += len(events)
            self.stats.records += len(records)
            offsets[tp] = records[-1].offset + 1
        if (alerts or rejected) and not await self._store(alerts, rejected):
            return  # stopped while the store was down: nothing committed, Kafka redelivers
        self.stats.alerts += len(alerts)
        self.stats.rejected += len(rejected)
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The group moved on (rebalance, session lost): the new owner reprocesses; upserts absorb it.
            self.stats.commit_failures += 1
            log.warning("offset commit failed, batch will be redelivered: %r", exc)
        self.stats.batches += 1

    async def run(self) -> DetectStats:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            client_id="auditwatch-detect",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=600_000,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
        )
        consumer.subscribe([self.topic], listener=_HandOver(self._lock, self._on_assign))
        await consumer.start()
        try:
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=500, max_records=self.max_records)
                if not batch:
                    continue
                async with self._lock:
                    await self._process(consumer, batch)
        finally:
            await consumer.stop()
        return self.stats
