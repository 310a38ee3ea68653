"""Kafka partitions and offsets of `detect`'s consumer: how it reads the topic, where a partition resumes, and
the rebalance listener that hands partitions over with their detector state."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from auditwatch.consumer_topic import TOPIC_CHECK_S

log = logging.getLogger("auditwatch.detect")

# How long the broker may hold a fetch for partitions that have nothing new (Kafka's default is 500 ms). aiokafka
# sends one fetch at a time to a broker, and only for the partitions whose records were all handed out: once a
# partition is drained (a small one, in a skewed topic) while another still has records buffered, the next fetch
# asks for the drained partition alone and is held this long, and the busy partition waits behind it.
FETCH_MAX_WAIT_MS = 100
# Records fetched per partition at a time (Kafka's default is 1 MB, a few thousand compressed records: one batch of
# work). Larger fetches make fewer fetch cycles, so fewer of the waits above, when a consumer has one busy partition.
MAX_PARTITION_FETCH_BYTES = 4 * 1024 * 1024
# A member learns that the group is rebalancing at its next heartbeat: a consumer joining waits for every member's
# (Kafka's default is 3 s, with a session of 10 s here).
HEARTBEAT_INTERVAL_MS = 1000

Records = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


def kafka_consumer(bootstrap: str, group: str) -> AIOKafkaConsumer:
    """A group member that commits only what it was told to, and starts a partition with no commit at its start."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id="auditwatch-detect",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_interval_ms=600_000,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        metadata_max_age_ms=int(TOPIC_CHECK_S * 1000),  # a missing topic is looked for this often
    )


async def resume(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> int | None:
    """Seek to the offset a restored state reflects, and return it; to the partition's start when it ends before that
    offset, and return None: offsets never go back, so the topic was deleted and created again (ingest does), its
    offsets starting over, and resuming at the saved one would skip the new topic's first records."""
    end = (await consumer.end_offsets([tp]))[tp]
    if offset <= end:
        consumer.seek(tp, offset)
        log.info("partition %d: detector state restored, resuming at offset %d", tp.partition, offset)
        return offset
    await consumer.seek_to_beginning(tp)
    log.warning("partition %d: detector state restored; its offset %d is past the partition's end (%d): the topic "
                "was created again, read from its start", tp.partition, offset, end)  # fmt: skip
    return None


async def resume_from_commit(consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
    """No state yet: start where the last commit (which only ever follows a checkpoint) says, else at the start."""
    committed = await consumer.committed(tp)
    if committed is None:
        await consumer.seek_to_beginning(tp)
    else:
        consumer.seek(tp, committed)


def fresh_records(
    consumer: AIOKafkaConsumer, batch: Records, ready: set[TopicPartition], positions: dict[TopicPartition, int]
) -> Records:
    """The records to process now, per ready partition (past its position)."""
    fresh: Records = {}
    for tp, all_records in batch.items():
        if tp not in ready:
            # fetched before the partition was adopted (its state restored): read it again later
            consumer.seek(tp, all_records[0].offset)
            continue
        start = positions.get(tp)
        records = [r for r in all_records if start is None or r.offset >= start]  # stale pre-seek fetches
        if records:
            fresh[tp] = records
    return fresh


class PartitionOwner(Protocol):
    """What `HandOver` needs of the consumer: its batch lock, and taking over and giving up partitions."""

    lock: asyncio.Lock

    async def checkpoint(self, tps: set[TopicPartition]) -> None: ...

    def forget(self, revoked: set[TopicPartition]) -> None: ...

    async def adopt(self, assigned: set[TopicPartition]) -> None: ...


class HandOver(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions move between detectors with their state.

    Revocation waits for the batch in flight (stored and committed), then checkpoints the revoked
    partitions' detector state with their offsets. Assignment restores a partition's checkpoint and seeks
    to the offset it reflects, so the new owner continues exactly where the state left off.
    """

    def __init__(self, owner: PartitionOwner) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        lock = self.owner.lock
        try:
            # bounded: if the batch cannot finish (store down), hand over anyway; nothing was committed
            await asyncio.wait_for(lock.acquire(), 30)
        except TimeoutError:
            log.warning("handing over partitions with a batch still in flight; it will be redelivered")
            self.owner.forget(revoked)
            return
        try:
            await self.owner.checkpoint(revoked)
        finally:
            lock.release()
            self.owner.forget(revoked)
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner.adopt(assigned)
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))
