"""The embedded sink: detection and the alert store in the webhook's process (the default mode)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import anyio.to_thread

from api.errors import StoreError
from api.outbox import OutboxRoute
from api.store import AlertStore
from api.tables import StateCheckpoints
from auditwatch.batches import BatchResults, BatchWriter
from auditwatch.live_exceptions import LiveExceptions
from auditwatch.logs import TuningLog, log_alerts
from auditwatch.metrics import DetectionMetrics
from detectors.events import AuditEvent, Rejected
from detectors.pipeline import Pipeline
from ingest.webhook import SinkResult, SinkUnavailable

STATE_SCOPE = "serve"
log = logging.getLogger("auditwatch.serve")


class EmbeddedSink:
    """A batch is durable once its alerts and rejected items are committed: then the webhook answers 200.

    Each batch is processed in a pipeline transaction, committed once the write is: if the write fails, the
    batch is rolled back (its events are not "seen", detector state is as before) and the webhook answers
    503, so the apiserver's retry is processed afresh and gives exactly the alerts of the first attempt. An
    event that a detector fails on is quarantined, the rest of the batch goes on.

    Batches are processed one at a time (detectors keep state; SQLite has one writer anyway). The state of
    stateful detectors is saved with a batch's alerts at most every `checkpoint_every_s` and on shutdown,
    and restored at start, so baselines and open sequences survive a restart. (A `kill -9` loses at most the
    state changes of the last few seconds; alerts already answered 200 are never lost.)

    With `record_receipts`, every accepted event (duplicates too: they were received) leaves a receipt,
    written with the batch's alerts, so a 200 means its receipts are durable as well. So are the
    notifications of its new alerts, queued in the same transaction for the sinks of `routes`. Only alerts new
    to the store are logged, counted and notified: a batch sent again (its 200 lost, or `serve` killed after the
    commit) is answered with its alerts but has none of these effects twice.

    With `exceptions`, alerts that a rule exception matches are counted, not stored (or reported).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        store: AlertStore,
        *,
        checkpoint_every_s: float = 5.0,
        record_receipts: bool = False,
        receipts_retention_hours: float = 168.0,
        exceptions: LiveExceptions | None = None,
        routes: Sequence[OutboxRoute] = (),
        metrics: DetectionMetrics | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.exceptions = exceptions
        self.writer = BatchWriter(
            store,
            checkpoint_every_s=checkpoint_every_s,
            record_receipts=record_receipts,
            receipts_retention_hours=receipts_retention_hours,
            routes=routes,
            metrics=metrics,
        )
        self._lock = threading.Lock()
        self._tuning_log = TuningLog(pipeline.tuning)

    def restore(self) -> None:
        """Load the rule exceptions and the last checkpoint, if any (call once the schema is migrated)."""
        if self.exceptions is not None:
            self.exceptions.refresh_if_due()
        if not self.pipeline.stateful:
            return
        saved = self.store.load_state(STATE_SCOPE)
        if saved is not None:
            self.pipeline.restore(saved[1])
        self.writer.restored(STATE_SCOPE)

    def process(self, events: list[AuditEvent], rejected: list[Rejected]) -> SinkResult:
        """Detect and store one batch; StoreError when it is not stored (rolled back: the sender retries it)."""
        with self._lock, self.pipeline.batch():
            failed: list[Rejected] = []
            alerts = self.pipeline.process_all(events, failed)
            hits: dict[str, list[str]] = {}
            if self.exceptions is not None:
                self.exceptions.refresh_if_due()
                alerts, hits = self.exceptions.split(alerts)
            if events and self.pipeline.stateful:
                self.writer.mark_changed(STATE_SCOPE)
            states: StateCheckpoints = {}
            if self.writer.checkpoint_due(STATE_SCOPE):
                states[STATE_SCOPE] = (None, self.pipeline.snapshot())
            batch = BatchResults(alerts, [*rejected, *failed], self.writer.receipts(events), states, hits)
            written = self.writer.write(batch)
        log_alerts(log, written.new)  # the batch's own line is the webhook's
        self._tuning_log.report(log)
        return SinkResult(
            alerts=written.alerts, new_alerts=written.new_alerts, rejected=tuple(failed), refused=written.refused
        )

    def checkpoint(self) -> None:
        """Save the detectors' state now, on shutdown."""
        with self._lock:
            if self.writer.changed(STATE_SCOPE):
                try:
                    self.writer.write(BatchResults(states={STATE_SCOPE: (None, self.pipeline.snapshot())}))
                except StoreError as exc:
                    log.error("could not save detector state on shutdown: %s", exc)

    async def accept(self, events: list[AuditEvent], rejected: list[Rejected]) -> SinkResult:
        try:
            return await anyio.to_thread.run_sync(self.process, events, rejected)
        except StoreError as exc:
            raise SinkUnavailable(str(exc)) from exc
