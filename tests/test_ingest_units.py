"""Pure pieces of ingest and replay that the integration tests only exercise indirectly."""

from __future__ import annotations

import copy

import pytest
from aiokafka.partitioner import DefaultPartitioner

from auditwatch.replay import Pacer, event_filters
from detectors.events import AuditEvent
from ingest.kafka import drop_superseded_request_received, partition_index, record_key
from tests.conftest import exec_event, scenario_events


def test_partitioning_matches_aiokafka_and_the_java_client() -> None:
    """Batches built per partition must land where `send()` (murmur2, like Java) would put them."""
    partitions = list(range(6))
    for key in (
        b"mallory@example.com",
        b"system:node:ip-10-0-1-23.ec2.internal",
        b"unauthenticated:198.51.100.9",
        b"x",
    ):
        assert partitions[partition_index(key, 6)] == DefaultPartitioner()(key, partitions, partitions)


def test_record_key_is_the_principal() -> None:
    event = exec_event()
    assert record_key(AuditEvent(raw=event)) == b"mallory@example.com"
    event["impersonatedUser"] = {"username": "system:admin"}
    assert record_key(AuditEvent(raw=event)) == b"system:admin"
    failed = {**exec_event(), "user": {}, "sourceIPs": ["10.0.0.1", "198.51.100.9"]}
    assert record_key(AuditEvent(raw=failed)) == b"unauthenticated:198.51.100.9"


def test_request_received_is_dropped_only_when_a_later_stage_is_in_the_batch() -> None:
    events = [AuditEvent(raw=e) for e in scenario_events()]
    kept = drop_superseded_request_received(events)
    assert all(e.stage != "RequestReceived" for e in kept)
    assert len(kept) == sum(1 for e in events if e.stage != "RequestReceived")
    lonely = AuditEvent(raw={**copy.deepcopy(exec_event()), "stage": "RequestReceived", "auditID": "lonely"})
    assert drop_superseded_request_received([lonely]) == [lonely]  # its later stage may come in another batch


def test_pacer_maps_event_time_to_wall_time_and_caps_long_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    import auditwatch.replay as replay_module

    clock = [1000.0]  # a fake wall clock that only sleeping moves
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(replay_module.time, "monotonic", lambda: clock[0])
    pacer = Pacer(10.0, max_sleep=2.0, sleep=sleep)

    def at(second: int) -> AuditEvent:
        event = exec_event()
        event["stageTimestamp"] = f"2026-11-20T10:{second // 60:02d}:{second % 60:02d}.000000Z"
        return AuditEvent(raw=event)

    pacer.wait(at(0))
    pacer.wait(at(5))  # 5 s of event time at 10x: about half a second
    pacer.wait(at(4))  # time going backwards never sleeps
    pacer.wait(at(600))  # a long quiet gap is compressed to the cap
    assert len(slept) == 2
    assert slept == [pytest.approx(0.5), 2.0]


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="--speed must be a positive number"):
        event_filters(speed=0)
