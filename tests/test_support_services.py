"""The test support's own Kafka: its cluster ids are ones StorageTool takes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support import services


def test_a_kafka_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """1 in 64 random ids would start with "-" (the first byte 0xf8-0xfb): `StorageTool format -t -x...` reads it as
    an option and fails, which failed a CI run's private broker. Kafka's own Uuid.randomUuid draws again; so do we."""
    drawn: Iterator[uuid.UUID] = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x01" * 16)])
    monkeypatch.setattr(services.uuid, "uuid4", lambda: next(drawn))
    assert services.kafka_cluster_id() == "AQEBAQEBAQEBAQEBAQEBAQ"
    monkeypatch.undo()
    assert all(not services.kafka_cluster_id().startswith("-") for _ in range(1000))
