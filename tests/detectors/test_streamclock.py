"""The stream clock: the earliest event time per stage and resource, whatever order and notation times come in
(most are judged from their text alone), and transactional."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import EventClock
from detectors.events import AuditEvent
from detectors.streamclock import StreamClock
from tests.support.events import exec_event

START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@dataclass
class ClockedDetector:
    """The least a detector needs to be timed by the clock: its stages and resources, and `clocked_by`."""

    stages: frozenset[str] | None
    resources: frozenset[str] | None
    clocks: list[EventClock] = field(default_factory=list)

    def clocked_by(self, clock: EventClock) -> None:
        self.clocks.append(clock)


def written(when: datetime, notation: str) -> str:
    """A time as an apiserver or an exporter may write it (every form passes validation)."""
    if notation == "offset":
        return when.astimezone(timezone(timedelta(hours=2))).isoformat()
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{when.microsecond:06d}"
    return {
        "seconds": text + "Z",
        "millis": f"{text}.{fraction[:3]}Z",
        "micros": f"{text}.{fraction}Z",
        "nanos": f"{text}.{fraction}123Z",
        "comma": f"{text},{fraction}Z",
    }[notation]


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["RequestReceived", "ResponseComplete", "ResponseStarted"]),
        st.sampled_from(["pods", "secrets", "configmaps"]),
        st.integers(0, 3_000_000_000),  # microseconds after START
        st.sampled_from(["seconds", "millis", "micros", "nanos", "comma", "offset"]),
    ),
    max_size=40,
)


def event(stage: str, resource: str, micros: int, notation: str) -> AuditEvent:
    raw: dict[str, Any] = exec_event()
    raw["stage"], raw["objectRef"]["resource"] = stage, resource
    raw["stageTimestamp"] = written(START + timedelta(microseconds=micros), notation)
    return AuditEvent(raw)


def expected(events: list[AuditEvent], stages: frozenset[str] | None, resources: frozenset[str] | None) -> Any:
    times = [e.timestamp for e in events
             if (stages is None or e.stage in stages) and (resources is None or e.resource in resources)]  # fmt: skip
    return min(times, default=None)


@settings(max_examples=300, deadline=None)
@given(seen=EVENTS, undone=EVENTS)
def test_the_earliest_time_is_the_least_of_the_events_seen(seen: Any, undone: Any) -> None:
    detectors = [ClockedDetector(frozenset({"ResponseComplete"}), frozenset({"secrets"})),
                 ClockedDetector(frozenset({"ResponseComplete", "ResponseStarted"}), None)]  # fmt: skip
    clock = StreamClock(detectors)
    assert all(d.clocks == [clock] for d in detectors)
    kept = [event(*e) for e in seen]
    for e in kept:
        clock.see(e)
    clock.begin()
    for e in (event(*e) for e in undone):
        clock.see(e)
    clock.rollback()  # a batch that failed leaves no trace
    for stages, resources in [
        (frozenset({"ResponseComplete"}), frozenset({"secrets"})),
        (frozenset({"ResponseComplete", "ResponseStarted"}), None),
        (None, None),
        (frozenset({"ResponseStarted"}), None),
    ]:
        tracked = [e for e in kept if e.stage != "RequestReceived"]  # no detector declares that stage
        want = expected(tracked, stages, resources)
        assert clock.earliest(stages, resources) == want, (stages, resources)


def test_an_earlier_time_in_another_notation_is_not_missed() -> None:
    """Text comparison is used only between times written alike: a later-looking text that is an earlier time
    (a comma for the decimal point, an offset) is converted and counts."""
    clock = StreamClock([ClockedDetector(None, None)])
    clock.see(event("ResponseComplete", "pods", 500_000, "micros"))
    clock.see(event("ResponseComplete", "pods", 400_000, "comma"))  # ',' sorts before '.' but is earlier here
    assert clock.earliest(None, None) == (START + timedelta(microseconds=400_000)).timestamp()
    clock.see(event("ResponseComplete", "pods", 300_000, "offset"))  # "10:00:00.3+02:00" reads later than "08:..."
    assert clock.earliest(None, None) == (START + timedelta(microseconds=300_000)).timestamp()
    clock.see(event("ResponseComplete", "pods", 200_000, "micros"))
    assert clock.earliest(None, None) == (START + timedelta(microseconds=200_000)).timestamp()
