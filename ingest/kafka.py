"""Publish audit events to Kafka: the webhook's sink in distributed mode, and `replay --to-kafka`.

Every event becomes one record on the audit topic, keyed by its principal so that one principal's events
stay on one partition (its detector state lives there); from the webhook, the record is the event's JSON text as
received (`ingest.body`), not re-encoded. `accept` returns only when every record of the
batch is acknowledged by all in-sync replicas (acks=all, idempotent producer: `ingest.producer`); otherwise it
raises SinkUnavailable and the webhook answers 503, which the apiserver retries. Items that failed validation go
to a dead-letter topic with their reason and origin (the webhook hands over at most MAX_KEPT_REJECTED per
batch and counts the rest), and so does an event too large for a record, rather than failing its batch on
every retry. A topic found missing while running (deleted, or not created at startup) is created again, at most
every RECREATE_INTERVAL_S.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, TypeVar

import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidReplicationFactorError,
    InvalidTopicError,
    NoError,
    TopicAlreadyExistsError,
    for_code,
)
from aiokafka.partitioner import murmur2
from confluent_kafka import KafkaError, KafkaException

from detectors.events import AuditEvent, Rejected
from detectors.redact import redacted_json
from ingest.body import ReceivedEvent, received
from ingest.body import record_key as record_key
from ingest.producer import Record, RecordProducer
from ingest.webhook import SinkResult, SinkUnavailable

log = logging.getLogger("auditwatch.ingest")

MAX_RECORD_BYTES = 8 * 1024 * 1024  # one audit event; the broker's message.max.bytes must allow it
DEAD_LETTER_PAYLOAD_BYTES = 16 * 1024  # as the quarantine table keeps
# An event's key and value must leave this much of a record for the record and batch headers.
_RECORD_OVERHEAD = 4096
_PROBE_TIMEOUT_S = 5.0  # a metadata round trip, when no broker is known to answer (it fails sooner when refused)
READY_CACHE_S = 1.0  # readyz's answer is kept this long: probes every few seconds, not a round trip per request
RECREATE_INTERVAL_S = 5.0  # a topic found missing is created again at most this often (an admin round trip)
# librdkafka's errors that mean no broker could be reached at all
_UNREACHABLE = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE})
_NO_ANSWER = frozenset({KafkaError._TIMED_OUT, KafkaError._MSG_TIMED_OUT})


@lru_cache(maxsize=65536)
def partition_index(key: bytes, partitions: int) -> int:
    """The partition of a keyed record: the Java client's (and aiokafka's) default partitioner, which librdkafka's
    `murmur2_random` (the ingest producer's) matches."""
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


def _oversized(event: ReceivedEvent) -> Rejected:
    size = len(event.key) + len(event.text)
    reason = f"event is {size} bytes as a record, over the limit of {MAX_RECORD_BYTES}"
    return Rejected(event.origin, reason, orjson.loads(event.text))


def kafka_problem(exc: BaseException, timeout_s: float) -> str:
    """Why a Kafka call failed, in a few words (aiokafka's own messages list resolver tuples)."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    if isinstance(error, KafkaError):  # librdkafka's (the producer)
        if error.code() in _UNREACHABLE:
            return "no broker answered (connection refused or unreachable)"
        if error.code() in _NO_ANSWER:
            return f"no answer within {timeout_s:g} s"
        return f"{error.name()}: {error.str()}"[:200]
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    name = type(exc).__name__
    if name == "KafkaConnectionError":
        return "no broker answered (connection refused or unreachable)"
    return f"{name}: {exc}".splitlines()[0][:200]


class TopicRefused(Exception):
    """Kafka answered but refused to create a topic for a reason that waiting does not change (a replication
    factor above the number of brokers, a policy, an ACL): a configuration error, said in one line."""

    def __init__(self, message: str, topic: str) -> None:
        super().__init__(message)
        self.topic = topic


class TopicMissing(SinkUnavailable):
    """The brokers answer, but the audit or the dead-letter topic is not there (never created, or deleted since)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int


async def ensure_topics(bootstrap: str, topics: Sequence[TopicSpec], *, timeout_s: float = 30.0) -> list[str]:
    """Create missing topics (existing ones are left as they are), in order, one request each; the names of those
    this call created. TopicRefused when Kafka refuses one for good, and those after it are not asked for (the
    dead-letter topic, after the audit topic, is not created without it); a retriable refusal (the controller
    moving, a timeout) is raised as aiokafka's error, as Kafka being late is."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        existing = set(await admin.list_topics())
        created: list[str] = []
        for spec in {t.name: t for t in topics if t.name not in existing}.values():  # a name once
            new = NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=spec.replication_factor,
                           topic_configs={"max.message.bytes": str(MAX_RECORD_BYTES)})  # fmt: skip
            # the broker answers the topic's outcome in the response, it raises nothing
            response = await admin.create_topics([new])
            created += [topic for topic, code, *message in response.topic_errors
                        if _check_created(bootstrap, topic, code, message[0] if message else None)]  # fmt: skip
        return created
    finally:
        await admin.close()


def _check_created(bootstrap: str, topic: str, code: int, message: str | None) -> bool:
    """Whether this request created `topic` (False: another process created it first); raises when refused."""
    if code in (NoError.errno, TopicAlreadyExistsError.errno):
        return bool(code == NoError.errno)
    error = for_code(code)
    why = f"{error.message}: {message or error.description}"
    if error.retriable:
        raise error(why)
    fix = "create the topic yourself"
    if code == InvalidReplicationFactorError.errno:
        fix = "set AUDITWATCH_REPLICATION_FACTOR to at most the number of brokers, or " + fix
    elif code == InvalidTopicError.errno:  # a name that collides with an existing one ('.' and '_' alike)
        fix = "choose another name (--topic, --dead-letter-topic)"
    raise TopicRefused(f"Kafka at {bootstrap} refused to create topic {topic} ({why}): {fix}", topic)


class KafkaSink:
    """A BatchSink for the webhook (and replay) that makes a batch durable in Kafka. The topics of `recreate` (as
    created at startup: partitions, replication factor) are created again when found missing."""

    def __init__(
        self,
        bootstrap: str,
        *,
        topic: str,
        dead_letter_topic: str,
        send_timeout_s: float = 20.0,
        drop_request_received: bool = False,
        recreate: Sequence[TopicSpec] = (),
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.send_timeout_s = send_timeout_s
        self.drop_request_received = drop_request_received
        self._recreate = {spec.name: spec for spec in recreate}
        self._recreated_at = -RECREATE_INTERVAL_S  # when missing topics were last created again (monotonic)
        self._producer: RecordProducer | None = None  # made on first use: in the worker process, after any fork
        self._probing: asyncio.Task[dict[str, KafkaError]] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._readiness: tuple[float, SinkUnavailable | None] | None = None  # when ready() last probed, and why not

    async def _ensure_producer(self, *, probe: bool = False) -> RecordProducer:
        """The producer, replaced when it failed for good; while no broker is known to answer, a topic was missing
        or the last batch failed (or when asked), a metadata round trip first, so a batch gets its 503 at once rather
        than at its deadline. TopicMissing when the brokers answer without a topic (and it could not be created
        again)."""
        producer = self._producer
        if producer is None or producer.failed is not None:
            if producer is not None:
                self._close_later(producer)
            producer = self._producer = RecordProducer(
                self.bootstrap, timeout_s=self.send_timeout_s, max_record_bytes=MAX_RECORD_BYTES
            )
        if producer.down or probe:
            probing = self._probing
            if probing is None or probing.done():  # one probe at a time, whatever the number of waiting batches
                probing = self._probing = asyncio.ensure_future(self._probe(producer))
            try:
                missing = await asyncio.shield(probing)
            except KafkaException as exc:
                why = kafka_problem(exc, min(self.send_timeout_s, _PROBE_TIMEOUT_S))
                raise SinkUnavailable(f"Kafka at {self.bootstrap} is unreachable: {why}") from exc
            if missing:
                raise TopicMissing("; ".join(self._missing_text(topic, error) for topic, error in missing.items()))
        return producer

    async def _probe(self, producer: RecordProducer) -> dict[str, KafkaError]:
        """The topics the brokers answer without, after creating again those it may (then asked again)."""
        timeout_s = min(self.send_timeout_s, _PROBE_TIMEOUT_S)
        topics = (self.topic, self.dead_letter_topic)
        missing = await producer.probe(topics, timeout_s)
        if missing and await self._create_again(list(missing), timeout_s):
            missing = await producer.probe(topics, timeout_s)
        return missing

    async def _create_again(self, missing: list[str], timeout_s: float) -> bool:
        """Create the missing topics of `recreate`, at most every RECREATE_INTERVAL_S, a WARNING line for each one
        created; whether one was. A topic Kafka refuses for good is said once and not asked for again. The
        dead-letter topic is created only once the audit topic is there: not beside one Kafka refuses."""
        if self.topic in missing and self.topic not in self._recreate:  # refused: until it is created by hand
            return False
        specs = sorted(
            (spec for name, spec in self._recreate.items() if name in missing), key=lambda spec: spec.name != self.topic
        )  # the audit topic first
        if not specs or time.monotonic() - self._recreated_at < RECREATE_INTERVAL_S:
            return False
        self._recreated_at = time.monotonic()
        created = False
        for spec in specs:  # one request each, so that each one created is said; the first failure stops them
            try:
                if await asyncio.wait_for(ensure_topics(self.bootstrap, [spec], timeout_s=timeout_s), timeout_s + 1):
                    created = True
                    log.warning(
                        "topic %s was missing on Kafka at %s: created it again (%d partitions, replication factor %d)",
                        spec.name, self.bootstrap, spec.partitions, spec.replication_factor,
                    )  # fmt: skip
            except TopicRefused as exc:  # waiting does not change it: the topic stays missing, batches get 503
                del self._recreate[exc.topic]
                log.warning("%s", exc)
                break
            except Exception as exc:  # Kafka late or away: asked again RECREATE_INTERVAL_S later
                log.info("creating topic %s again failed: %s", spec.name, kafka_problem(exc, timeout_s))
                break
        return created

    def _missing_text(self, topic: str, error: KafkaError) -> str:
        text = f"topic {topic} is not on Kafka at {self.bootstrap} ({error.str()})"
        if topic in self._recreate:
            return f"{text}: it is created again (tried at most every {RECREATE_INTERVAL_S:g} s)"
        return f"{text}: create it, or restart ingest or detect, which create it at startup"

    def _close_later(self, producer: RecordProducer) -> None:
        task = asyncio.get_running_loop().create_task(producer.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def start(self) -> None:
        """Connect now if Kafka is up; if not, the first batch retries (and gets 503 meanwhile)."""
        try:
            await self._ensure_producer()
        except SinkUnavailable as exc:
            until = "it exists" if isinstance(exc, TopicMissing) else "it is reachable"
            log.warning("%s: webhook batches get 503 (the apiserver retries them) until %s", exc, until)

    async def ready(self) -> None:
        """Raise SinkUnavailable unless a broker answers, and knows the topic (TopicMissing: readiness probe). The
        answer is kept READY_CACHE_S, so a flood of probes makes one metadata round trip, and a broker that went
        away is seen that much later."""
        if self._readiness is not None and time.monotonic() - self._readiness[0] < READY_CACHE_S:
            failed = self._readiness[1]
            if failed is not None:
                raise type(failed)(*failed.args)  # a new one: re-raising the same would grow its traceback
            return
        try:
            await self._ensure_producer(probe=True)
        except SinkUnavailable as exc:
            self._readiness = (time.monotonic(), exc)
            raise
        self._readiness = (time.monotonic(), None)

    async def accept(self, events: list[AuditEvent], rejected: list[Rejected]) -> SinkResult:
        """Events decoded whole (replay): encoded for their records."""
        return await self.accept_received([received(event) for event in events], rejected)

    async def accept_received(self, events: list[ReceivedEvent], rejected: list[Rejected]) -> SinkResult:
        """Every event's text as it came becomes its record's value, keyed by its principal; the batch's dead
        letters go with it. Returns once every record is acknowledged."""
        producer = await self._ensure_producer()
        if self.drop_request_received:
            events = drop_superseded_request_received(events)
        topic, limit = self.topic, MAX_RECORD_BYTES - _RECORD_OVERHEAD
        records: list[Record] = [(topic, e.key, e.text) for e in events if len(e.key) + len(e.text) <= limit]
        oversized: list[Rejected] = []
        if len(records) < len(events):  # an event too big for a record, dead-lettered instead
            oversized = [_oversized(e) for e in events if len(e.key) + len(e.text) > limit]
        records += [(self.dead_letter_topic, None, dead_letter(item)) for item in [*rejected, *oversized]]
        try:
            # one deadline for the whole batch, waiting for room in the producer's queue included
            async with asyncio.timeout(self.send_timeout_s):
                await producer.send(records)
        except (KafkaException, TimeoutError) as exc:
            producer.down = True  # the next batch probes first: a topic deleted meanwhile is found and created again
            raise SinkUnavailable(
                f"Kafka did not acknowledge the batch: {kafka_problem(exc, self.send_timeout_s)}"
            ) from exc
        return SinkResult(alerts=0)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.close()
        if self._closing:
            await asyncio.gather(*self._closing)
