"""The embedded sink: detection and the alert store in the webhook's process (the default mode)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import anyio.to_thread

from api.store import AlertStore, Receipt, ReceiptRetention, StoreError, receipt_of
from detectors.alerts import Alert
from detectors.events import AuditEvent, Rejected
from detectors.pipeline import Pipeline
from ingest.webhook import SinkResult, SinkUnavailable

STATE_SCOPE = "serve"
MAX_PENDING_RECEIPTS = 100_000  # receipts held while the store is down
log = logging.getLogger("auditwatch.serve")


class EmbeddedSink:
    """A batch is durable once its alerts and rejected items are committed: then the webhook answers 200.

    Batches are processed one at a time (detectors keep state; SQLite has one writer anyway). The state of
    stateful detectors is saved with a batch's alerts at most every `checkpoint_every_s` and on shutdown,
    and restored at start, so baselines and open sequences survive a restart. (A `kill -9` loses at most the
    state changes of the last few seconds; alerts already answered 200 are never lost.)

    With `record_receipts`, every accepted event (duplicates too: they were received) leaves a receipt,
    written with the batch's alerts, so a 200 means its receipts are durable as well.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        store: AlertStore,
        *,
        checkpoint_every_s: float = 5.0,
        record_receipts: bool = False,
        receipts_retention_hours: float = 168.0,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.checkpoint_every_s = checkpoint_every_s
        self.retention = ReceiptRetention(store, receipts_retention_hours) if record_receipts else None
        self._lock = threading.Lock()
        self._last_checkpoint = 0.0
        self._dirty = False
        self._pending: list[Alert] = []  # alerts of a batch whose write failed: written with the retry
        self._pending_receipts: dict[Receipt, None] = {}  # likewise for receipts (a set, in arrival order)

    def restore(self) -> None:
        """Load the last checkpoint, if any (call once the schema is migrated)."""
        if not self.pipeline.stateful:
            return
        saved = self.store.load_state(STATE_SCOPE)
        if saved is not None:
            self.pipeline.restore(saved[1])
        self._last_checkpoint = time.monotonic()

    def process(self, events: list[AuditEvent], rejected: list[Rejected]) -> SinkResult:
        with self._lock:
            # A retried batch is not counted twice by stateful detectors (the pipeline drops duplicate
            # events), so the alerts of the failed attempt are kept here and written with the retry.
            alerts = self._pending + self.pipeline.process_all(events)
            self._pending = []
            receipts = self._pending_receipts
            self._pending_receipts = {}
            if self.retention is not None:
                receipts.update(dict.fromkeys(map(receipt_of, events)))
            self._dirty = self._dirty or bool(events and self.pipeline.stateful)
            states: dict[str, tuple[int | None, dict[str, Any]]] | None = None
            if self._dirty and time.monotonic() - self._last_checkpoint >= self.checkpoint_every_s:
                states = {STATE_SCOPE: (None, self.pipeline.snapshot())}
            if alerts or rejected or states or receipts:
                try:
                    self.store.write(alerts, rejected, states, receipts=list(receipts))
                except StoreError:
                    # Bounded: past the cap they are dropped, and the sender's retry of the refused batches
                    # (answered 503) brings their receipts back.
                    self._pending = alerts
                    self._pending_receipts = receipts if len(receipts) <= MAX_PENDING_RECEIPTS else {}
                    raise
            if states:
                self._last_checkpoint, self._dirty = time.monotonic(), False
            if self.retention is not None and self.retention.due():
                self.retention.run()
        return SinkResult(alerts=len(alerts))

    def checkpoint(self) -> None:
        """Save the detectors' state (and alerts still pending) now, on shutdown."""
        with self._lock:
            if self._dirty or self._pending or self._pending_receipts:
                try:
                    self.store.write(
                        self._pending,
                        [],
                        {STATE_SCOPE: (None, self.pipeline.snapshot())},
                        receipts=list(self._pending_receipts),
                    )
                except StoreError as exc:
                    log.error("could not save detector state on shutdown: %s", exc)
                    return
                self._dirty, self._pending, self._pending_receipts = False, [], {}

    async def accept(self, events: list[AuditEvent], rejected: list[Rejected]) -> SinkResult:
        try:
            return await anyio.to_thread.run_sync(self.process, events, rejected)
        except StoreError as exc:
            raise SinkUnavailable(str(exc)) from exc
