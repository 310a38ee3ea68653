"""Rule exceptions as detection applies them: loaded from the store, kept fresh, used to filter alerts.

`serve`, `detect` and `replay --db` each hold one. It loads the exceptions at start and again every
`refresh_s` seconds (default 30), and at the next batch after `invalidate()` (serve calls it when an
exception is created or deleted through its own API). Between the pipeline and the batch writer, `split`
drops the alerts that an exception matches and names them per exception; their ids travel with the batch
(`BatchResults.hits`) and are recorded as the exceptions' hits in the batch's transaction, each once.

A store that cannot be read keeps the exceptions last loaded in force (and is tried again at the next
interval): detection goes on, and suppresses what it suppressed before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from api.errors import StoreError
from api.store import AlertStore
from detectors.alerts import Alert
from detectors.exceptions import ExceptionSet

log = logging.getLogger("auditwatch.exceptions")


class LiveExceptions:
    """The store's active exceptions, reloaded when due. Thread-safe: `invalidate` may come from any thread."""

    def __init__(
        self, store: AlertStore, *, refresh_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.clock = clock
        self.current = ExceptionSet()
        self._lock = threading.Lock()
        self._wanted = 1  # generations: asked for (invalidate), and loaded; the first load is due at once
        self._loaded = 0
        self._tried = -float("inf")

    def invalidate(self) -> None:
        """The exceptions changed: reload them before the next batch."""
        with self._lock:
            self._wanted += 1

    def refresh_if_due(self) -> None:
        """Reload from the store if asked to or `refresh_s` passed since the last try (does I/O)."""
        if self._wanted == self._loaded and self.clock() - self._tried < self.refresh_s:
            return  # the common case, without the lock: replay asks once per line
        with self._lock:
            wanted = self._wanted
            due = wanted != self._loaded or self.clock() - self._tried >= self.refresh_s
            if not due:
                return
            self._tried = self.clock()
        try:
            loaded = ExceptionSet(self.store.active_exceptions())
        except StoreError as exc:
            log.warning("could not reload rule exceptions (the last ones loaded stay in force): %s", exc)
            with self._lock:
                self._loaded = max(self._loaded, wanted)  # the next try is an interval away
            return
        for exception_id, reason in loaded.invalid:
            log.warning("rule exception %s is not applied: %s", exception_id, reason)
        with self._lock:
            self.current = loaded
            self._loaded = max(self._loaded, wanted)

    def split(self, alerts: Sequence[Alert]) -> tuple[list[Alert], dict[str, list[str]]]:
        """The alerts no exception matches, and the ids of those each exception suppressed (no I/O)."""
        return self.current.split(alerts, datetime.now(UTC))
