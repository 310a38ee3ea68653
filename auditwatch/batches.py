"""The batch writer: one batch's detection results and detector state, stored in one transaction.

`serve` (the embedded sink), `detect` (the Kafka consumer) and `replay --db` all write through it, so it
is the one place that decides what a failed write leaves behind, and when detector state is checkpointed
and old receipts pruned.

A write is the commit boundary: `BatchWriter.write` returns only once everything given to it (and
everything a failed write left pending) is committed, and raises `StoreError` otherwise; the caller then
answers 503 (serve) or retries with backoff (detect). The alerts and receipts of a failed write are kept
and written with the next write: a retried batch brings its events again, but a pipeline with stateful
detectors drops events it has already seen, so their alerts would not come again. Receipts are kept up to
a bound: past it they are dropped, and the retry of the batch brings them back. Rejected items and
detector state are not kept: the retry brings them again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from api.errors import StoreError
from api.retention import ReceiptRetention
from api.store import AlertStore
from api.tables import Receipt, StateCheckpoints, receipt_of
from detectors.alerts import Alert
from detectors.events import AuditEvent, Rejected

MAX_PENDING_RECEIPTS = 100_000  # receipts held while the store is down


@dataclass(frozen=True)
class BatchResults:
    """What one batch produced: alerts, rejected items, receipts, and detector state to checkpoint with them."""

    alerts: Sequence[Alert] = ()
    rejected: Sequence[Rejected] = ()
    receipts: Sequence[Receipt] = ()
    states: StateCheckpoints = field(default_factory=dict)


@dataclass(frozen=True)
class Written:
    """What a write stored: the alerts given to it plus those a failed write had left pending (the count the
    webhook reports), and how many alerts were new to the store."""

    alerts: int
    new_alerts: int


class BatchWriter:
    """Writes batches to the alert store; keeps what a failed write must retry; schedules checkpoints.

    Detector state is checkpointed per scope ("serve", or one per Kafka partition): a scope whose state
    changed is due `checkpoint_every_s` after its last checkpoint was tried (or its state restored). Calls
    are serialised by the caller (one batch at a time).
    """

    def __init__(
        self,
        store: AlertStore,
        *,
        checkpoint_every_s: float = 5.0,
        record_receipts: bool = False,
        receipts_retention_hours: float = 168.0,
    ) -> None:
        self.store = store
        self.checkpoint_every_s = checkpoint_every_s
        self.retention = ReceiptRetention(store, receipts_retention_hours) if record_receipts else None
        self._pending_alerts: list[Alert] = []  # of a write that failed: written with the next one
        self._pending_receipts: dict[Receipt, None] = {}  # likewise (a set, in arrival order)
        self._tried: dict[str, float] = {}  # scope -> when its state was last checkpointed (tried) or restored
        self._changed: set[str] = set()  # scopes whose state changed since their last stored checkpoint

    def receipts(self, events: Iterable[AuditEvent]) -> list[Receipt]:
        """The receipts of a batch's events when receipts are recorded (duplicates too: they were received)."""
        return [receipt_of(event) for event in events] if self.retention is not None else []

    @property
    def pending(self) -> bool:
        """Whether a failed write left alerts or receipts to write."""
        return bool(self._pending_alerts or self._pending_receipts)

    def restored(self, scope: str) -> None:
        """A scope's state was just loaded from its checkpoint: its next one is a full interval away."""
        self._tried[scope] = time.monotonic()

    def mark_changed(self, scope: str) -> None:
        self._changed.add(scope)

    def changed(self, scope: str) -> bool:
        """Whether the scope's state changed since its last stored checkpoint."""
        return scope in self._changed

    def forget(self, scope: str) -> None:
        """The scope moved elsewhere (a revoked partition): no checkpoint of it is due here any more."""
        self._tried.pop(scope, None)
        self._changed.discard(scope)

    def checkpoint_due(self, scope: str, *, force: bool = False) -> bool:
        """Whether to checkpoint the scope's state with this batch (`force`: on hand-over or shutdown)."""
        if force:
            return True
        since = time.monotonic() - self._tried.get(scope, -math.inf)
        return scope in self._changed and since >= self.checkpoint_every_s

    def write(self, batch: BatchResults) -> Written:
        """Store the batch (with what a failed write left pending) in one transaction, then prune old receipts
        when due. Raises StoreError, keeping the alerts and receipts (bounded) for the next write."""
        alerts = self._pending_alerts + list(batch.alerts)
        receipts = self._pending_receipts | dict.fromkeys(batch.receipts)
        now = time.monotonic()
        for scope in batch.states:
            self._tried[scope] = now
        new = 0
        if alerts or batch.rejected or batch.states or receipts:
            try:
                new = self.store.write(alerts, batch.rejected, batch.states, receipts=list(receipts))
            except StoreError:
                # one copy of each alert: a caller that retries with the same batch must not grow this
                self._pending_alerts = list({alert.id: alert for alert in alerts}.values())
                self._pending_receipts = receipts if len(receipts) <= MAX_PENDING_RECEIPTS else {}
                raise
        self._pending_alerts, self._pending_receipts = [], {}
        self._changed.difference_update(batch.states)
        if self.retention is not None and self.retention.due():
            self.retention.run()
        return Written(alerts=len(alerts), new_alerts=new)
