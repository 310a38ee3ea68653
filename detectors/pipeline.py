"""event -> detectors -> alerts. The same synchronous core serves the webhook, replay and the consumer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from detectors.alerts import Alert
from detectors.base import Detector
from detectors.events import STAGES, AuditEvent


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
        alerts: list[Alert] = []
        for detector in self.candidates(event):
            found = detector.detect(event)
            if found:
                alerts.extend(found)
        return alerts

    def process_all(self, events: Iterable[AuditEvent]) -> list[Alert]:
        alerts: list[Alert] = []
        for event in events:
            alerts.extend(self.process(event))
        return alerts
