"""A pipeline's stream clock: the earliest event time it processed, for the detectors that measure time from the
start of the stream (`Clocked`: a baselined rule's learning period) but are routed only the events they match."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from detectors.base import Clocked, Detector
from detectors.events import STAGES, AuditEvent

Slot = tuple[str, str | None]  # (stage, None) for a stage, (stage, resource) for a stage and resource


class StreamClock:
    """The earliest event time per stage, and per stage and resource, for the stages and resources its detectors
    declare: so `earliest(stages, resources)` is the time of the first event routed by stages and resources alone,
    i.e. the first event such a detector saw when it was shown all of them. Events of other stages (often half the
    stream: RequestReceived) are not timed. Transactional like the detectors' state."""

    def __init__(self, detectors: Iterable[Detector]) -> None:
        # slot -> (earliest time, its stageTimestamp when written as `_canonical` says, else None)
        self._earliest: dict[Slot, tuple[float, str | None]] = {}
        self._saved: dict[Slot, tuple[float, str | None]] | None = None
        stages: set[str] = set()
        resources: set[str] = set()
        for detector in detectors:
            if isinstance(detector, Clocked):
                stages.update(STAGES if detector.stages is None else detector.stages)
                resources.update(detector.resources or ())
                detector.clocked_by(self)
        self._stages = frozenset(stages)
        self._resources = frozenset(resources)

    def slots(self, stage: Any, resource: Any) -> tuple[Slot, ...]:
        """The slots an event of this stage and resource moves (the pipeline keeps them with its route)."""
        if type(stage) is not str or stage not in self._stages:
            return ()
        return ((stage, None), (stage, resource)) if resource in self._resources else ((stage, None),)

    def see(self, event: AuditEvent) -> None:
        """Count an event (called once per event, after its route is known)."""
        raw = event.raw
        ref = raw.get("objectRef")
        slots = self.slots(raw.get("stage"), ref.get("resource") if type(ref) is dict else None)
        if slots:
            self.see_in(event, slots)

    def see_in(self, event: AuditEvent, slots: tuple[Slot, ...]) -> None:
        """`see`, the event's slots known (`slots`)."""
        stamp: Any = event.raw.get("stageTimestamp")
        # A (validated) stageTimestamp written like the canonical earliest one (same length, UTC) compares as the
        # times do: no earlier is told from the text alone (the usual case). Otherwise it is converted and compared
        # (a fraction written with a comma, another zone).
        utc = type(stamp) is str and stamp[-1:] == "Z"
        earliest = self._earliest
        now: float | None = None
        for slot in slots:
            known = earliest.get(slot)
            if known is not None and utc:
                first = known[1]
                if first is not None and len(stamp) == len(first) and stamp >= first:
                    continue
            if now is None:
                now = event.timestamp
            if known is None or now < known[0]:
                earliest[slot] = (now, stamp if _canonical(stamp) else None)

    def earliest(self, stages: frozenset[str] | None, resources: frozenset[str] | None) -> float | None:
        times = [
            t for (s, r), (t, _) in self._earliest.items()
            if (r is None if resources is None else r in resources) and (stages is None or s in stages)
        ]  # fmt: skip
        return min(times, default=None)

    def clear(self) -> None:
        """Forget the events seen: the pipeline's state was replaced by a snapshot."""
        self._earliest = {}

    def begin(self) -> None:
        self._saved = dict(self._earliest)

    def commit(self) -> None:
        self._saved = None

    def rollback(self) -> None:
        if self._saved is not None:
            self._earliest = self._saved
            self._saved = None


def _canonical(stamp: Any) -> bool:
    """A UTC time as the apiserver writes it, `2026-11-20T08:00:00.123456Z` (any number of fraction digits, or
    none): the only kind kept to compare others with. (Called only when the earliest time moves.)"""
    if type(stamp) is not str or stamp[-1:] != "Z" or stamp[4:17:3] != "--T::":
        return False
    digits = stamp[:4] + stamp[5:7] + stamp[8:10] + stamp[11:13] + stamp[14:16] + stamp[17:19]
    fraction = stamp[20:-1]
    return (
        digits.isascii() and digits.isdigit()
        and (len(stamp) == 20 or (stamp[19] == "." and fraction.isascii() and fraction.isdigit()))
    )  # fmt: skip
