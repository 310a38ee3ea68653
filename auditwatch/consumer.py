"""The Kafka consumer of `auditwatch detect`: a consumer-group member that runs the pipeline and writes alerts.

At least once, with idempotent effects: a batch's alerts (and rejected records) are written in one
transaction with upserts, and only then are the batch's offsets committed. A crash in between makes
Kafka redeliver the batch, and the upsert absorbs it. While the database is down the consumer keeps
retrying the same batch with backoff and commits nothing; it catches up when the database returns.
On a rebalance, the partitions being revoked are handed over only after the batch in flight is stored
and committed.

Each batch runs in a transaction of every partition pipeline it touches, committed once the write is.
A failed write is retried with the very results computed the first time, not rolled back and computed
again: detection is deterministic, so a recomputation would give the same alerts at the cost of running
the detectors again, and the consumer (unlike the webhook) still holds the records. Only when it gives
the batch up - stopped while the database is down, or an error - is the batch rolled back, detector
state and positions included: the shutdown checkpoint then reflects what was stored, and the records
are redelivered to whoever resumes from it. An event that a detector fails on is quarantined; the rest
of the batch goes on.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from api.errors import StoreError
from api.outbox import OutboxRoute
from api.store import AlertStore
from api.tables import Receipt, StateCheckpoints
from auditwatch.batches import BatchResults, BatchWriter, Written
from auditwatch.consumer_batch import ConsumerStats, Detected, Phases, account_batch, decode_record
from auditwatch.consumer_partitions import (
    HandOver,
    Records,
    fresh_records,
    kafka_consumer,
    resume,
    resume_from_commit,
)
from auditwatch.consumer_topic import TopicGone, TopicWatch
from auditwatch.live_exceptions import LiveExceptions
from auditwatch.logs import TuningLog, log_alerts
from auditwatch.metrics import Metrics
from detectors.alerts import Alert
from detectors.events import Rejected, Rejections
from detectors.pipeline import Pipeline

log = logging.getLogger("auditwatch.detect")


class Consumer:
    """One member of the consumer group. Each partition gets its own pipeline (its own detector state):
    records are keyed by principal, so a principal's state lives with its partition."""

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
        checkpoint_every_s: float = 5.0,
        idle_checkpoint_s: float = 1.0,
        record_receipts: bool = False,
        receipts_retention_hours: float = 168.0,
        exceptions: LiveExceptions | None = None,
        routes: Sequence[OutboxRoute] = (),
        metrics: Metrics | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.template = pipeline
        self.store = store
        self.max_records = max_records
        self.backoff_cap_s = backoff_cap_s
        # Once caught up (a poll came back empty), changed state is checkpointed after this interval instead of
        # checkpoint_every_s: the committed offsets, which follow the checkpoints, then reach the end of the topic
        # soon after the consumer does, and the group's lag reads 0. Not at every idle poll: a sparse stream would
        # write the whole state for nearly every event.
        self.idle_checkpoint_s = min(idle_checkpoint_s, checkpoint_every_s)
        # receipts of every decoded event are stored with the batch's alerts before its offsets are committed
        self.writer = BatchWriter(
            store,
            checkpoint_every_s=checkpoint_every_s,
            record_receipts=record_receipts,
            receipts_retention_hours=receipts_retention_hours,
            routes=routes,  # new alerts are queued for these notification sinks with the batch
            metrics=metrics.detection if metrics is not None else None,
        )
        self.metrics = metrics.consumer if metrics is not None else None
        self.exceptions = exceptions
        self.stats = ConsumerStats()
        self._tuning_log = TuningLog(pipeline.tuning)  # every partition's pipeline shares the template's tuning
        self.lock = asyncio.Lock()
        self.topic_watch = TopicWatch(topic, log)
        self._stop = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._pipelines: dict[TopicPartition, Pipeline] = {}
        self._positions: dict[TopicPartition, int] = {}  # next offset, after the last processed record
        self._ready: set[TopicPartition] = set()  # partitions whose state is in place

    def stop(self) -> None:
        self._stop.set()

    def _scope(self, tp: TopicPartition) -> str:
        return f"kafka:{self.group}:{tp.topic}:{tp.partition}"

    def _pipeline(self, tp: TopicPartition) -> Pipeline:
        pipeline = self._pipelines.get(tp)
        if pipeline is None:
            pipeline = self._pipelines[tp] = self.template.fresh()
        return pipeline

    async def adopt(self, assigned: set[TopicPartition]) -> None:
        """Take over partitions: restore each one's checkpointed state and seek to the offset it reflects.

        Records of a partition fetched before this completes are dropped in `_process` (the partition is
        not ready yet); the seek below makes the consumer fetch them again, now in step with the state.
        """
        self.stats.partitions = {tp.partition for tp in assigned}
        for tp in assigned:
            if tp in self._ready:
                continue
            if self.template.stateful:
                assert self._consumer is not None
                pipeline = self._pipelines[tp] = self.template.fresh()
                saved = await asyncio.to_thread(self.store.load_state, self._scope(tp))
                position = None
                if saved is not None and saved[0] is not None:
                    pipeline.restore(saved[1])
                    position = await resume(self._consumer, tp, saved[0])
                else:
                    await resume_from_commit(self._consumer, tp)
                if position is None:
                    self._positions.pop(tp, None)
                else:
                    self._positions[tp] = position
                self.writer.restored(self._scope(tp))
            self._ready.add(tp)

    def pipelines(self) -> list[Pipeline]:
        """The pipelines of the partitions held now (one each)."""
        return list(self._pipelines.values())

    def forget(self, revoked: set[TopicPartition]) -> None:
        if self.metrics is not None:
            self.metrics.forget(tp.partition for tp in revoked)
        for tp in revoked:
            self._ready.discard(tp)
            self._pipelines.pop(tp, None)
            self._positions.pop(tp, None)
            self.writer.forget(self._scope(tp))

    def _due_states(
        self, tps: set[TopicPartition], *, force: bool = False, every_s: float | None = None
    ) -> tuple[StateCheckpoints, dict[TopicPartition, int]]:
        """States to checkpoint now (as the writer schedules them), and the offsets they reflect."""
        if not self.template.stateful:
            return {}, {}
        states: StateCheckpoints = {}
        offsets: dict[TopicPartition, int] = {}
        for tp in tps:
            scope = self._scope(tp)
            if tp in self._positions and self.writer.checkpoint_due(scope, force=force, every_s=every_s):
                offsets[tp] = self._positions[tp]
                states[scope] = (offsets[tp], self._pipeline(tp).snapshot())
        return states, offsets

    def _changed(self) -> set[TopicPartition]:
        """Partitions processed since their last checkpoint."""
        return {tp for tp in self._pipelines if self.writer.changed(self._scope(tp))}

    async def checkpoint(self, tps: set[TopicPartition], *, force: bool = True, every_s: float | None = None) -> None:
        states, offsets = self._due_states(tps, force=force, every_s=every_s)
        if not states:
            return
        restarted = self.topic_watch.restarted(self._consumer, states)  # topic deleted: at offset 0, not committed
        try:
            await asyncio.to_thread(self.writer.write, BatchResults(states=restarted or states))
            if restarted:
                log.info("topic %s deleted: detector state of partitions %s checkpointed at offset 0, where a topic "
                         "created again starts", self.topic, sorted(tp.partition for tp in offsets))  # fmt: skip
            elif self._consumer is not None:
                await self.topic_watch.commit(self._consumer, offsets)
        except (StoreError, KafkaError, TimeoutError, TopicGone) as exc:
            log.warning("could not checkpoint detector state (the next owner replays from the last one): %r", exc)

    async def _store(self, batch: BatchResults) -> Written | None:
        """Write until it works (or we are stopped); what was stored, None when stopped first."""
        delay = 0.5
        while True:
            try:
                written = await asyncio.to_thread(self.writer.write, batch)
                self.stats.new_alerts += written.new_alerts
                self.stats.rejected += len(written.refused)  # events quarantined for an alert the store refused
                return written
            except StoreError as exc:
                self.stats.store_retries += 1
                log.warning("alert store unavailable, retrying in %.1fs (offsets not committed): %s", delay, exc)
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                    return None
                except TimeoutError:
                    delay = min(self.backoff_cap_s, delay * 2) * (0.8 + 0.4 * random.random())

    def _detect(self, work: Records) -> Detected:
        """Run each partition's records through its pipeline (a batch must be open on it)."""
        alerts: list[Alert] = []
        rejected = Rejections()  # at most MAX_KEPT_REJECTED per batch are kept (quarantined), all counted
        failed: list[Rejected] = []  # events a detector failed on: all quarantined
        receipts: list[Receipt] = []
        offsets: dict[TopicPartition, int] = {}
        events_seen = 0
        for tp, records in work.items():
            pipeline = self._pipeline(tp)
            for record in records:
                events, bad = decode_record(record)
                for event in events:
                    alerts.extend(pipeline.process(event, failed))
                receipts.extend(self.writer.receipts(events))
                rejected.merge(bad)
                events_seen += len(events)
            offsets[tp] = self._positions[tp] = records[-1].offset + 1
            if self.template.stateful:
                self.writer.mark_changed(self._scope(tp))
        hits: dict[str, list[str]] = {}
        if self.exceptions is not None:
            alerts, hits = self.exceptions.split(alerts)
        states, checkpointed = self._due_states(set(offsets))
        results = BatchResults(alerts, [*rejected.kept, *failed], receipts, states, hits)
        failed_origins = frozenset(r.origin for r in failed)
        return Detected(results, offsets, checkpointed, events_seen, rejected.total, failed_origins)

    async def _process(
        self,
        consumer: AIOKafkaConsumer,
        batch: Records,
        phases: Phases,
    ) -> None:
        started = time.perf_counter()
        work = fresh_records(consumer, batch, self._ready, self._positions)
        if self.exceptions is not None:
            await asyncio.to_thread(self.exceptions.refresh_if_due)
        pipelines = {tp: self._pipeline(tp) for tp in work}
        positions = {tp: self._positions.get(tp) for tp in work}
        for pipeline in pipelines.values():
            pipeline.begin()
        try:
            detected = self._detect(work)
            phases.detect = time.perf_counter() - started
            results = detected.results
            log.debug(
                "batch %s: %d alerts, checkpoint %s",
                {tp.partition: (r[0].offset, r[-1].offset) for tp, r in batch.items()}, len(results.alerts),
                {tp.partition: off for tp, off in detected.checkpointed.items()},
            )  # fmt: skip
            written = await self._store(results)
            phases.write = time.perf_counter() - started - phases.detect
        except BaseException:
            self._roll_back(pipelines, positions)
            raise
        if written is None:
            self._roll_back(pipelines, positions)
            return  # stopped while the store was down: nothing acknowledged, Kafka redelivers
        for pipeline in pipelines.values():
            pipeline.commit()
        log_alerts(log, written.new)  # a redelivered batch's alerts were logged when they were stored
        # With stateful detectors, Kafka's committed offset follows the state checkpoint, never passes it: a
        # restart resumes where the saved state left off (redelivered alerts are absorbed by the upserts).
        to_commit = detected.checkpointed if self.template.stateful else detected.offsets
        if to_commit:
            committing = time.perf_counter()
            await self._commit(consumer, to_commit)
            phases.commit = time.perf_counter() - committing
        account_batch(log, work, detected, written, phases, self.stats, self.metrics)
        self._tuning_log.report(log)
        self.stats.batches += 1

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self.topic_watch.commit(consumer, offsets)
        except (CommitFailedError, KafkaError, TimeoutError, TopicGone) as exc:
            # The group moved on (rebalance, session lost): the new owner reprocesses; upserts absorb it.
            self.stats.commit_failures += 1
            if self.metrics is not None:
                self.metrics.commit_failures.inc()
            log.warning("offset commit failed, batch will be redelivered: %r", exc)

    def _roll_back(
        self, pipelines: dict[TopicPartition, Pipeline], positions: dict[TopicPartition, int | None]
    ) -> None:
        """Undo a batch that was not stored: detector state and positions as they were before it (for the
        partitions still ours: a partition handed over meanwhile restarts from its checkpoint elsewhere)."""
        for tp, pipeline in pipelines.items():
            pipeline.rollback()
            if self._pipelines.get(tp) is not pipeline:
                continue
            before = positions[tp]
            if before is None:
                self._positions.pop(tp, None)
            else:
                self._positions[tp] = before

    async def run(self) -> ConsumerStats:
        consumer = kafka_consumer(self.bootstrap, self.group)
        self._consumer = consumer
        consumer.subscribe([self.topic], listener=HandOver(self))
        await consumer.start()
        try:
            while not self._stop.is_set():
                polling = time.perf_counter()
                batch = await consumer.getmany(timeout_ms=500, max_records=self.max_records)
                phases = Phases(poll=time.perf_counter() - polling)
                self.topic_watch.check(consumer)  # says once that the topic is missing, once that it is back
                if self.metrics is not None:
                    self.metrics.observe_lag(consumer, self._positions)
                if not batch:
                    changed = self._changed()
                    if changed:  # caught up: checkpoint what the last batches changed
                        async with self.lock:
                            await self.checkpoint(changed, force=False, every_s=self.idle_checkpoint_s)
                    continue
                async with self.lock:
                    await self._process(consumer, batch, phases)
            async with self.lock:
                await self.checkpoint(set(self._pipelines))
        finally:
            await consumer.stop()
        return self.stats
