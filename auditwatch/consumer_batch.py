"""One consumed batch: records decoded into events, what the batch gave, and its accounting (stats, metrics, log)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord, TopicPartition

from auditwatch.batches import BatchResults, Written
from auditwatch.metrics import ConsumerMetrics
from detectors.errors import EventError
from detectors.events import AuditEvent, Rejected, Rejections, parse_body


@dataclass
class ConsumerStats:
    records: int = 0
    events: int = 0
    alerts: int = 0
    new_alerts: int = 0
    suppressed: int = 0  # alerts that rule exceptions kept out of the store
    rejected: int = 0
    receipts: int = 0
    batches: int = 0
    store_retries: int = 0
    commit_failures: int = 0
    partitions: set[int] = field(default_factory=set)


@dataclass
class Phases:
    """Where a batch's time went (seconds): waiting for its records, detection, the store's write, the offset
    commit. Logged with the batch, so that a slow consumer shows whether it waits on Kafka, the CPU or the store."""

    poll: float = 0.0
    detect: float = 0.0
    write: float = 0.0
    commit: float = 0.0

    def fields(self) -> dict[str, float]:
        return {f"{name}_ms": round(seconds * 1000, 1) for name, seconds in vars(self).items()}


@dataclass(frozen=True)
class Detected:
    """What a batch of records gave: what to store, the partitions' new positions, the offsets that the state
    checkpoints in `results` reflect, and how many events the records held."""

    results: BatchResults
    offsets: dict[TopicPartition, int]
    checkpointed: dict[TopicPartition, int]
    events: int
    invalid: int  # items that are not valid events, quarantined or only counted (past MAX_KEPT_REJECTED)
    failed: frozenset[str]  # origins of the events a detector failed on


def decode_record(record: ConsumerRecord[bytes, bytes]) -> tuple[list[AuditEvent], Rejections]:
    origin = f"kafka:{record.topic}/{record.partition}@{record.offset}"
    if record.value is None:
        return [], Rejections.of(Rejected(origin, "empty record", None))
    try:
        return parse_body(record.value, origin=origin)
    except EventError as exc:
        return [], Rejections.of(Rejected(origin, str(exc), record.value[:4096].decode("utf-8", "replace")))


def account_batch(
    log: logging.Logger,
    work: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
    detected: Detected,
    written: Written,
    phases: Phases,
    stats: ConsumerStats,
    metrics: ConsumerMetrics | None,
) -> None:
    """Count a stored batch (its offsets committed or tried) in the stats and metrics, and log it."""
    record_count = sum(len(records) for records in work.values())
    results = detected.results
    rejected = detected.invalid + len(detected.failed)
    seconds = phases.detect + phases.write  # until stored (the commit has its own field)
    if work:
        log.info("batch", extra={
            "records": record_count, "events": detected.events, "rejected": rejected,
            "alerts": len(results.alerts), "new_alerts": written.new_alerts,
            "partitions": sorted(tp.partition for tp in work), "ms": round(seconds * 1000, 1), **phases.fields(),
        })  # fmt: skip
    if metrics is not None:
        metrics.batch_stored(detected.events, detected.invalid, detected.failed, written.refused, seconds)
        metrics.records.inc(record_count)
    stats.records += record_count
    stats.events += detected.events
    stats.alerts += len(results.alerts)
    stats.suppressed += sum(len(alert_ids) for alert_ids in results.hits.values())
    stats.rejected += rejected
    stats.receipts += len(results.receipts)
