"""event -> detectors -> alerts. The same synchronous core serves the webhook, replay and the consumer."""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from detectors.alerts import Alert
from detectors.base import Detector, Stateful, StatefulDetector
from detectors.events import STAGES, AuditEvent

DEDUPE_WINDOW = 200_000  # events remembered to drop exact duplicates


class Pipeline:
    """Runs every detector that can apply to an event, in load order.

    Detectors declare which stages and resources they look at; the pipeline indexes them so that the
    common case (a lease update, a watch) touches only the few detectors that could fire on it.
    """

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors = tuple(detectors)
        self._index: dict[str, tuple[dict[str, tuple[Detector, ...]], tuple[Detector, ...]]] = {}
        for stage in STAGES:
            applicable = [d for d in self.detectors if d.stages is None or stage in d.stages]
            wildcard = tuple(d for d in applicable if d.resources is None)
            resources = {r for d in applicable if d.resources is not None for r in d.resources}
            by_resource = {
                r: tuple(d for d in applicable if d.resources is None or r in d.resources) for r in resources
            }
            self._index[stage] = (by_resource, wildcard)
        self._stateful: tuple[StatefulDetector, ...] = tuple(d for d in self.detectors if isinstance(d, Stateful))
        # recently seen event identities, oldest first; only stateful detectors need it
        self._seen: set[tuple[Any, Any, Any]] | None = set() if self._stateful else None
        self._seen_order: deque[tuple[Any, Any, Any]] = deque()

    def _duplicate(self, event: AuditEvent) -> bool:
        """An event seen recently (a retried webhook batch, a record produced twice) must not count twice
        in stateful detectors. Identity is (auditID, stage, stageTimestamp): auditID alone is client-chosen."""
        assert self._seen is not None
        raw = event.raw
        key = (raw.get("auditID"), raw.get("stage"), raw.get("stageTimestamp"))
        if key in self._seen:
            return True
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > DEDUPE_WINDOW:
            # O(1): a deque of arrival order (deleting from the front of a dict would make iteration O(n))
            self._seen.discard(self._seen_order.popleft())
        return False

    def candidates(self, event: AuditEvent) -> tuple[Detector, ...]:
        entry = self._index.get(event.stage)
        if entry is None:
            return ()
        by_resource, wildcard = entry
        ref = event.raw.get("objectRef")
        resource = ref.get("resource") if isinstance(ref, dict) else None
        if resource is None:
            return wildcard
        return by_resource.get(resource, wildcard)

    def process(self, event: AuditEvent) -> list[Alert]:
        if self._seen is not None and self._duplicate(event):
            return []
        alerts: list[Alert] = []
        for detector in self.candidates(event):
            found = detector.detect(event)
            if found:
                alerts.extend(found)
        return alerts

    @property
    def stateful(self) -> list[StatefulDetector]:
        """Detectors that keep state between events (they have snapshot/restore)."""
        return list(self._stateful)

    def snapshot(self) -> dict[str, Any]:
        """The state of every stateful detector, JSON-ready, keyed by detector id."""
        return {d.id: d.snapshot() for d in self.stateful}

    def restore(self, states: dict[str, Any]) -> None:
        """Load a snapshot; detectors absent from it (new rules) start empty, unknown ids are ignored."""
        for detector in self.stateful:
            detector.restore(states.get(detector.id, {}))

    def fresh(self) -> Pipeline:
        """A pipeline with the same detectors and state of its own (one per Kafka partition)."""
        return Pipeline([copy.deepcopy(d) if isinstance(d, Stateful) else d for d in self.detectors])

    def process_all(self, events: Iterable[AuditEvent]) -> list[Alert]:
        alerts: list[Alert] = []
        for event in events:
            alerts.extend(self.process(event))
        return alerts
