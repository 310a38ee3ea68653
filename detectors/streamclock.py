"""A pipeline's stream clock: the earliest event time it processed, for the detectors that measure time from the
start of the stream (`Clocked`: a baselined rule's learning period) but are routed only the events they match."""

from __future__ import annotations

from collections.abc import Iterable

from detectors.base import Clocked, Detector
from detectors.events import STAGES, AuditEvent


class StreamClock:
    """The earliest event time per stage, and per stage and resource, for the stages and resources its detectors
    declare: so `earliest(stages, resources)` is the time of the first event routed by stages and resources alone,
    i.e. the first event such a detector saw when it was shown all of them. Events of other stages (often half the
    stream: RequestReceived) are not timed. Transactional like the detectors' state."""

    def __init__(self, detectors: Iterable[Detector]) -> None:
        self._by_stage: dict[str, float] = {}
        self._by_resource: dict[tuple[str, str], float] = {}
        self._saved: tuple[dict[str, float], dict[tuple[str, str], float]] | None = None
        stages: set[str] = set()
        resources: set[str] = set()
        for detector in detectors:
            if isinstance(detector, Clocked):
                stages.update(STAGES if detector.stages is None else detector.stages)
                resources.update(detector.resources or ())
                detector.clocked_by(self)
        self._stages = frozenset(stages)
        self._resources = frozenset(resources)

    def see(self, event: AuditEvent) -> None:
        """Count an event the pipeline routes (called once per event, after its route is known)."""
        stage = event.stage
        if stage not in self._stages:
            return
        now = event.timestamp
        earliest = self._by_stage.get(stage)
        if earliest is None or now < earliest:
            self._by_stage[stage] = now
        ref = event.raw.get("objectRef")
        resource = ref.get("resource") if isinstance(ref, dict) else None
        if resource in self._resources:
            earliest = self._by_resource.get((stage, resource))
            if earliest is None or now < earliest:
                self._by_resource[(stage, resource)] = now

    def earliest(self, stages: frozenset[str] | None, resources: frozenset[str] | None) -> float | None:
        if resources is None:
            times = [t for s, t in self._by_stage.items() if stages is None or s in stages]
        else:
            times = [t for (s, r), t in self._by_resource.items() if r in resources and (stages is None or s in stages)]
        return min(times, default=None)

    def clear(self) -> None:
        """Forget the events seen: the pipeline's state was replaced by a snapshot."""
        self._by_stage, self._by_resource = {}, {}

    def begin(self) -> None:
        self._saved = (dict(self._by_stage), dict(self._by_resource))

    def commit(self) -> None:
        self._saved = None

    def rollback(self) -> None:
        if self._saved is not None:
            self._by_stage, self._by_resource = self._saved
            self._saved = None
