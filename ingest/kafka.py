"""Publish audit events to Kafka: the webhook's sink in distributed mode, and `replay --to-kafka`.

Every event becomes one record on the audit topic, keyed by its principal so that one principal's events
stay on one partition (its detector state lives there); from the webhook, the record is the event's JSON text as
received (`ingest.body`), not re-encoded. `accept` returns only when every record of the
batch is acknowledged by all in-sync replicas (acks=all, idempotent producer); otherwise it raises
SinkUnavailable and the webhook answers 503, which the apiserver retries. Items that failed validation go
to a dead-letter topic with their reason and origin (the webhook hands over at most MAX_KEPT_REJECTED per
batch and counts the rest), and so does an event too large for a record, rather than failing its batch on
every retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, TypeVar

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from detectors.events import AuditEvent, Rejected
from detectors.redact import redacted_json
from ingest.body import ReceivedEvent, received
from ingest.body import record_key as record_key
from ingest.webhook import SinkResult, SinkUnavailable

log = logging.getLogger("auditwatch.ingest")

MAX_RECORD_BYTES = 8 * 1024 * 1024  # one audit event; the broker's message.max.bytes must allow it
DEAD_LETTER_PAYLOAD_BYTES = 16 * 1024  # as the quarantine table keeps
# An event's key and value must leave this much of a record for the record and batch headers.
_RECORD_OVERHEAD = 4096


@lru_cache(maxsize=65536)
def partition_index(key: bytes, partitions: int) -> int:
    """The Java client's (and aiokafka's) default partitioner for keyed records."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class _Staged(Protocol):
    @property
    def stage(self) -> str: ...
    @property
    def audit_id(self) -> str: ...


_S = TypeVar("_S", bound=_Staged)


def drop_superseded_request_received(events: list[_S]) -> list[_S]:
    """Drop RequestReceived events whose request has a later stage in the same batch (it adds nothing)."""
    later = {e.audit_id for e in events if e.stage != "RequestReceived"}
    return [e for e in events if e.stage != "RequestReceived" or e.audit_id not in later]


def dead_letter(item: Rejected) -> bytes:
    """The dead-letter record of a rejected item. Its payload is redacted and cut as in the quarantine table
    (the topic is read by people and kept for days): JSON when whole, else the cut JSON text as a string."""
    text, truncated = redacted_json(item.payload, DEAD_LETTER_PAYLOAD_BYTES)
    payload = text if truncated else orjson.Fragment(text)
    return orjson.dumps({"origin": item.origin, "reason": item.reason, "payload": payload,
                         "payload_truncated": truncated})  # fmt: skip


def kafka_problem(exc: BaseException, timeout_s: float) -> str:
    """Why a Kafka call failed, in a few words (aiokafka's own messages list resolver tuples)."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    name = type(exc).__name__
    if name == "KafkaConnectionError":
        return "no broker answered (connection refused or unreachable)"
    return f"{name}: {exc}".splitlines()[0][:200]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int


async def ensure_topics(bootstrap: str, topics: Sequence[TopicSpec], *, timeout_s: float = 30.0) -> None:
    """Create missing topics (existing ones are left as they are)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                t.name,
                num_partitions=t.partitions,
                replication_factor=t.replication_factor,
                topic_configs={"max.message.bytes": str(MAX_RECORD_BYTES)},
            )
            for t in topics
            if t.name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created it first
    finally:
        await admin.close()


class KafkaSink:
    """A BatchSink for the webhook (and replay) that makes a batch durable in Kafka."""

    def __init__(
        self,
        bootstrap: str,
        *,
        topic: str,
        dead_letter_topic: str,
        send_timeout_s: float = 20.0,
        drop_request_received: bool = False,
        producers: int = 3,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.send_timeout_s = send_timeout_s
        self.drop_request_received = drop_request_received
        # aiokafka keeps one produce request in flight per broker connection, so one producer is bound by
        # round trips, not CPU; a few producers (one per webhook batch in turn) keep the broker busy. Order
        # within a batch is kept (one producer per batch); apiserver batches are unordered anyway.
        self._producers: list[AIOKafkaProducer | None] = [None] * max(1, producers)
        self._next = 0
        self._starting = asyncio.Lock()

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id="auditwatch-ingest",
            acks="all",
            enable_idempotence=True,
            compression_type="lz4",
            linger_ms=0,  # batches are built whole per webhook POST; waiting adds only latency
            max_batch_size=1024 * 1024,
            max_request_size=MAX_RECORD_BYTES,
            request_timeout_ms=int(self.send_timeout_s * 1000),
        )

    async def _ensure_producer(self, slot: int = 0) -> AIOKafkaProducer:
        existing = self._producers[slot]
        if existing is not None:
            return existing
        async with self._starting:
            current = self._producers[slot]
            if current is None:
                current = self._new_producer()
                try:
                    await asyncio.wait_for(current.start(), self.send_timeout_s)
                except (KafkaError, TimeoutError, OSError) as exc:
                    await _quietly_stop(current)
                    why = kafka_problem(exc, self.send_timeout_s)
                    raise SinkUnavailable(f"Kafka at {self.bootstrap} is unreachable: {why}") from exc
                self._producers[slot] = current
            return current

    async def start(self) -> None:
        """Connect now if Kafka is up; if not, the first batch retries (and gets 503 meanwhile)."""
        try:
            await self._ensure_producer()
        except SinkUnavailable as exc:
            log.warning("%s: webhook batches get 503 (the apiserver retries them) until it is reachable", exc)

    async def ready(self) -> None:
        """Raise SinkUnavailable unless a producer is connected (readiness probe)."""
        await self._ensure_producer()

    async def accept(self, events: list[AuditEvent], rejected: list[Rejected]) -> SinkResult:
        """Events decoded whole (replay): encoded for their records."""
        return await self.accept_received([received(event) for event in events], rejected)

    async def accept_received(self, events: list[ReceivedEvent], rejected: list[Rejected]) -> SinkResult:
        """Every event's text as it came becomes its record's value."""
        slot = self._next
        self._next = (slot + 1) % len(self._producers)
        producer = await self._ensure_producer(slot)
        if self.drop_request_received:
            events = drop_superseded_request_received(events)
        try:
            # one deadline for the whole batch: sending itself blocks while the broker is away
            async with asyncio.timeout(self.send_timeout_s):
                oversized: list[Rejected] = []
                futures = await self._send_events(producer, events, oversized)
                for item in [*rejected, *oversized]:
                    futures.append(await producer.send(self.dead_letter_topic, value=dead_letter(item)))
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError) as exc:
            # The producer may be wedged (broker gone): rebuild it on its next batch.
            stale, self._producers[slot] = self._producers[slot], None
            if stale is not None:
                asyncio.get_running_loop().create_task(_quietly_stop(stale))
            raise SinkUnavailable(f"Kafka did not acknowledge the batch: {exc!r}") from exc
        return SinkResult(alerts=0)

    async def _send_events(
        self, producer: AIOKafkaProducer, events: list[ReceivedEvent], oversized: list[Rejected]
    ) -> list[Any]:
        """Group records by partition (the Java client's murmur2 of the key) and send whole batches; events too
        large for a record go to `oversized` instead.

        Per-record `send()` costs tens of microseconds in aiokafka; appending to a batch per partition
        is several times cheaper, and keeps the same partitioning as `send()` and the Java clients.
        """
        partitions = sorted(await producer.partitions_for(self.topic))
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for event in events:
            key, value = event.key, event.text
            if len(key) + len(value) > MAX_RECORD_BYTES - _RECORD_OVERHEAD:
                reason = f"event is {len(key) + len(value)} bytes as a record, over the limit of {MAX_RECORD_BYTES}"
                oversized.append(Rejected(event.origin, reason, orjson.loads(value)))
                continue
            partition = partitions[partition_index(key, len(partitions))]
            by_partition.setdefault(partition, []).append((key, value))
        futures: list[Any] = []
        for partition, records in by_partition.items():
            batch = producer.create_batch()
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is not None:
                    continue
                if batch.record_count():
                    futures.append(await producer.send_batch(batch, self.topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:  # larger than a whole batch
                    futures.append(await producer.send(self.topic, key=key, value=value, partition=partition))
            if batch.record_count():
                futures.append(await producer.send_batch(batch, self.topic, partition=partition))
        return futures

    async def close(self) -> None:
        for slot, producer in enumerate(self._producers):
            if producer is not None:
                await _quietly_stop(producer)
                self._producers[slot] = None


async def _quietly_stop(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 10)
    except Exception as exc:  # noqa: BLE001 - shutting down a broken client must not raise
        log.debug("producer stop failed: %r", exc)
