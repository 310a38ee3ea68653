"""Receipt retention: old event receipts pruned a bounded number at a time, every few minutes."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from api.errors import StoreError
from api.store import AlertStore

log = logging.getLogger("auditwatch.store")


class ReceiptRetention:
    """Prunes receipts older than the retention, at most once every `every_s` (sooner while behind), a bounded
    number of rows at a time, so it costs one indexed DELETE every few minutes. Callers serialise calls."""

    def __init__(self, store: AlertStore, retention_hours: float, *, every_s: float = 300.0) -> None:
        self.store = store
        self.retention = timedelta(hours=retention_hours)
        self.every_s = every_s
        self.max_rows = 100_000
        self._last = float("-inf")

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    def run(self) -> int:
        """Prune now; a failure is logged, never raised (the batch it follows is already stored)."""
        self._last = time.monotonic()
        try:
            pruned = self.store.prune_receipts(datetime.now(UTC) - self.retention, max_rows=self.max_rows)
        except StoreError as exc:
            log.warning("could not prune event receipts (will retry): %s", exc)
            return 0
        if pruned >= self.max_rows:
            self._last = float("-inf")  # behind: prune again after the next batch
        return pruned
