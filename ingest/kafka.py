"""Publish audit events to Kafka: the webhook's sink in distributed mode, and `replay --to-kafka`.

Every event becomes one record on the audit topic, keyed by its principal so that one principal's events
stay on one partition (its detector state lives there). `accept` returns only when every record of the
batch is acknowledged by all in-sync replicas (acks=all, idempotent producer); otherwise it raises
SinkUnavailable and the webhook answers 503, which the apiserver retries. Items that failed validation go
to a dead-letter topic with their reason and origin.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from detectors.events import AuditEvent, Rejected
from ingest.webhook import SinkResult, SinkUnavailable

log = logging.getLogger("auditwatch.ingest")

MAX_RECORD_BYTES = 8 * 1024 * 1024  # one audit event; the broker's message.max.bytes must allow it


def record_key(event: AuditEvent) -> bytes:
    """The principal: the impersonated user if any, else the authenticated user.

    Requests that failed authentication carry no user; they are keyed by their last source IP (the only
    trustworthy one), so per-IP detectors (401 bursts) see them together.
    """
    principal = event.principal
    if principal:
        return principal.encode()
    ips = event.source_ips
    return f"unauthenticated:{ips[-1] if ips else '-'}".encode()


def drop_superseded_request_received(events: list[AuditEvent]) -> list[AuditEvent]:
    """Drop RequestReceived events whose request has a later stage in the same batch (it adds nothing)."""
    later = {e.audit_id for e in events if e.stage != "RequestReceived"}
    return [e for e in events if e.stage != "RequestReceived" or e.audit_id not in later]


def dead_letter(item: Rejected) -> bytes:
    return orjson.dumps(
        {"origin": item.origin, "reason": item.reason, "payload": item.payload}, option=orjson.OPT_NON_STR_KEYS
    )


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
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.send_timeout_s = send_timeout_s
        self.drop_request_received = drop_request_received
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id="auditwatch-ingest",
            acks="all",
            enable_idempotence=True,
            compression_type="lz4",
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=MAX_RECORD_BYTES,
            request_timeout_ms=int(self.send_timeout_s * 1000),
        )

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._starting:
            if self._producer is None:
                producer = self._new_producer()
                try:
                    await asyncio.wait_for(producer.start(), self.send_timeout_s)
                except (KafkaError, TimeoutError, OSError) as exc:
                    await _quietly_stop(producer)
                    raise SinkUnavailable(f"Kafka at {self.bootstrap} is unreachable: {exc!r}") from exc
                self._producer = producer
            return self._producer

    async def start(self) -> None:
        """Connect now if Kafka is up; if not, the first batch retries (and gets 503 meanwhile)."""
        try:
            await self._ensure_producer()
        except SinkUnavailable as exc:
            log.warning("%s; answering 503 until it is reachable", exc)

    async def ready(self) -> None:
        """Raise SinkUnavailable unless a producer is connected (readiness probe)."""
        await self._ensure_producer()

    async def accept(self, events: list[AuditEvent], rejected: list[Rejected]) -> SinkResult:
        producer = await self._ensure_producer()
        if self.drop_request_received:
            events = drop_superseded_request_received(events)
        try:
            # one deadline for the whole batch: send() itself blocks while the broker is away
            async with asyncio.timeout(self.send_timeout_s):
                futures: list[Any] = []
                for event in events:
                    value = orjson.dumps(event.raw)
                    futures.append(await producer.send(self.topic, value=value, key=record_key(event)))
                for item in rejected:
                    futures.append(await producer.send(self.dead_letter_topic, value=dead_letter(item)))
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError) as exc:
            # The producer may be wedged (broker gone): rebuild it on the next batch.
            stale, self._producer = self._producer, None
            if stale is not None:
                asyncio.get_running_loop().create_task(_quietly_stop(stale))
            raise SinkUnavailable(f"Kafka did not acknowledge the batch: {exc!r}") from exc
        return SinkResult(alerts=0)

    async def close(self) -> None:
        if self._producer is not None:
            await _quietly_stop(self._producer)
            self._producer = None


async def _quietly_stop(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 10)
    except Exception as exc:  # noqa: BLE001 - shutting down a broken client must not raise
        log.debug("producer stop failed: %r", exc)
