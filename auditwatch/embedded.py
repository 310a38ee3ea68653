"""The embedded sink: detection and the alert store in the webhook's process (the default mode)."""

from __future__ import annotations

import threading

import anyio.to_thread

from api.store import AlertStore, StoreError
from detectors.events import AuditEvent, Rejected
from detectors.pipeline import Pipeline
from ingest.webhook import SinkResult, SinkUnavailable


class EmbeddedSink:
    """A batch is durable once its alerts and rejected items are committed: then the webhook answers 200.

    Batches are processed one at a time (detectors may keep state; SQLite has one writer anyway).
    """

    def __init__(self, pipeline: Pipeline, store: AlertStore) -> None:
        self.pipeline = pipeline
        self.store = store
        self._lock = threading.Lock()

    def process(self, events: list[AuditEvent], rejected: list[Rejected]) -> SinkResult:
        with self._lock:
            alerts = self.pipeline.process_all(events)
            if alerts or rejected:
                self.store.write(alerts, rejected)
        return SinkResult(alerts=len(alerts))

    async def accept(self, events: list[AuditEvent], rejected: list[Rejected]) -> SinkResult:
        try:
            return await anyio.to_thread.run_sync(self.process, events, rejected)
        except StoreError as exc:
            raise SinkUnavailable(str(exc)) from exc
