"""Pure pieces of the Kafka producer side that the integration tests only exercise indirectly: partitions,
record keys, superseded RequestReceived events."""

from __future__ import annotations

import copy

from aiokafka.partitioner import DefaultPartitioner

from detectors.events import AuditEvent
from ingest.kafka import drop_superseded_request_received, partition_index, record_key
from tests.support.events import exec_event, scenario_events


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
