"""The batch writer: one batch's detection results and detector state, stored in one transaction.

`serve` (the embedded sink), `detect` (the Kafka consumer) and `replay --db` all write through it, so it
is the one place that decides when detector state is checkpointed and old receipts pruned.

A write is the commit boundary: `BatchWriter.write` returns once the batch is committed (an alert the
database refuses is quarantined in its place, see api/batchwrite.py) and raises `StoreError` when nothing
of it was stored. A failed write leaves nothing behind, here or in the store: the caller writes the batch
again, either recomputed from a redelivery (serve: its pipeline rolled the batch back, so the redelivered
events are not duplicates and give the same alerts) or as the very same results (detect).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from api.batchwrite import WriteResult
from api.errors import StoreError
from api.outbox import OutboxRoute
from api.retention import ReceiptRetention
from api.store import AlertStore
from api.tables import Receipt, StateCheckpoints, receipt_of
from detectors.alerts import Alert
from detectors.events import AuditEvent, Rejected

if TYPE_CHECKING:
    from auditwatch.metrics import DetectionMetrics


@dataclass(frozen=True)
class BatchResults:
    """What one batch produced: alerts, rejected items, receipts, detector state to checkpoint with them, and
    the alerts that rule exceptions suppressed (exception id -> the alerts' ids)."""

    alerts: Sequence[Alert] = ()
    rejected: Sequence[Rejected] = ()
    receipts: Sequence[Receipt] = ()
    states: StateCheckpoints = field(default_factory=dict)
    hits: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Written:
    """What a write stored: how many alerts (the count the webhook reports), the alerts among them that were new
    to the store (the ones to log, count and notify: a redelivered batch's are not), and the events quarantined in
    place of alerts that the database refused."""

    alerts: int
    new: tuple[Alert, ...] = ()
    refused: tuple[Rejected, ...] = ()

    @property
    def new_alerts(self) -> int:
        return len(self.new)


class BatchWriter:
    """Writes batches to the alert store; schedules checkpoints and receipt pruning.

    Detector state is checkpointed per scope ("serve", or one per Kafka partition): a scope whose state
    changed is due `checkpoint_every_s` after its last checkpoint was tried (or its state restored). Calls
    are serialised by the caller (one batch at a time). New alerts are queued for the notification sinks of
    `routes` in the same transaction, and rule exception hits recorded. With `metrics`, alerts and hits new to the
    store, write times and failures are counted.
    """

    def __init__(
        self,
        store: AlertStore,
        *,
        checkpoint_every_s: float = 5.0,
        record_receipts: bool = False,
        receipts_retention_hours: float = 168.0,
        routes: Sequence[OutboxRoute] = (),
        metrics: DetectionMetrics | None = None,
    ) -> None:
        self.store = store
        self.routes = tuple(routes)
        self.metrics = metrics
        self.checkpoint_every_s = checkpoint_every_s
        self.retention = ReceiptRetention(store, receipts_retention_hours) if record_receipts else None
        self._tried: dict[str, float] = {}  # scope -> when its state was last checkpointed (tried) or restored
        self._changed: set[str] = set()  # scopes whose state changed since their last stored checkpoint

    def receipts(self, events: Iterable[AuditEvent]) -> list[Receipt]:
        """The receipts of a batch's events when receipts are recorded (duplicates too: they were received)."""
        return [receipt_of(event) for event in events] if self.retention is not None else []

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

    def checkpoint_due(self, scope: str, *, force: bool = False, every_s: float | None = None) -> bool:
        """Whether to checkpoint the scope's state with this batch (`force`: on hand-over or shutdown; `every_s`:
        an interval other than `checkpoint_every_s`, such as a consumer's shorter one once it has caught up)."""
        if force:
            return True
        since = time.monotonic() - self._tried.get(scope, -math.inf)
        return scope in self._changed and since >= (self.checkpoint_every_s if every_s is None else every_s)

    def write(self, batch: BatchResults) -> Written:
        """Store the batch in one transaction, then prune old receipts when due. StoreError when not stored."""
        now = time.monotonic()
        for scope in batch.states:
            self._tried[scope] = now
        stored = WriteResult()
        if batch.alerts or batch.rejected or batch.states or batch.receipts or batch.hits:
            try:
                stored = self.store.write(
                    batch.alerts,
                    batch.rejected,
                    batch.states,
                    receipts=batch.receipts,
                    routes=self.routes,
                    hits=batch.hits,
                )
            except StoreError as exc:
                if self.metrics is not None:
                    self.metrics.write_failed(exc)
                raise
            if self.metrics is not None:
                self.metrics.write_seconds.observe(time.monotonic() - now)
        new = _new_alerts(batch.alerts, stored.new_ids)
        if self.metrics is not None:
            self.metrics.stored(new, stored.new_hits)
        self._changed.difference_update(batch.states)
        if self.retention is not None and self.retention.due():
            self.retention.run()
        alerts = len(batch.alerts) - len(stored.refused)
        return Written(alerts=alerts, new=new, refused=stored.refused)


def _new_alerts(alerts: Sequence[Alert], new_ids: frozenset[str]) -> tuple[Alert, ...]:
    """The alerts of the batch (in its order, each once) whose ids the write reported new."""
    if not new_ids:
        return ()
    left = set(new_ids)
    new = []
    for alert in alerts:
        if alert.id in left:
            left.discard(alert.id)
            new.append(alert)
    return tuple(new)
