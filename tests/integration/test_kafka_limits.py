"""The Kafka ingest against real Kafka: junk items reach the dead-letter topic capped per batch, and an event or a
payload too large for a record is dead-lettered rather than failing its batch on every retry."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest

from auditwatch.server import create_ingest_app
from auditwatch.settings import Settings
from detectors.events import MAX_KEPT_REJECTED, AuditEvent, Rejected
from ingest.kafka import DEAD_LETTER_PAYLOAD_BYTES, MAX_RECORD_BYTES, KafkaSink, TopicSpec, ensure_topics
from tests.support.client import TestClient
from tests.support.events import event_list, exec_event
from tests.support.services import kafka_bootstrap, topic_records

pytestmark = pytest.mark.integration


def topics() -> tuple[str, str]:
    name = f"limits-{uuid.uuid4().hex[:8]}"
    return name, f"{name}-dlq"


def test_oversized_events_and_payloads_are_dead_lettered_and_the_batch_accepted() -> None:
    bootstrap = kafka_bootstrap()
    topic, dlq = topics()
    grown = exec_event() | {"requestObject": {"n": [1e15] * 500_000}}  # 2 MB as sent, 9.5 MB as orjson writes it
    assert len(orjson.dumps(grown)) > MAX_RECORD_BYTES
    junk = Rejected("webhook#items[2]", "expected an Event object, got string", "x" * (2 * DEAD_LETTER_PAYLOAD_BYTES))

    async def send() -> None:
        await ensure_topics(bootstrap, [TopicSpec(topic, 1, 1), TopicSpec(dlq, 1, 1)])
        sink = KafkaSink(bootstrap, topic=topic, dead_letter_topic=dlq)
        try:
            await sink.accept([AuditEvent(exec_event(), "a"), AuditEvent(grown, "webhook#items[1]")], [junk])
        finally:
            await sink.close()

    asyncio.run(send())
    assert [orjson.loads(r.value)["auditID"] for r in topic_records(bootstrap, topic)] == [exec_event()["auditID"]]
    letters = [orjson.loads(r.value) for r in topic_records(bootstrap, dlq, expect_at_least=2)]
    by_origin = {letter["origin"]: letter for letter in letters}
    assert by_origin["webhook#items[2]"]["payload_truncated"] is True
    oversized = by_origin["webhook#items[1]"]
    assert f"over the limit of {MAX_RECORD_BYTES}" in oversized["reason"] and oversized["payload_truncated"] is True


def test_a_body_of_junk_items_dead_letters_the_first_and_counts_the_rest() -> None:
    bootstrap = kafka_bootstrap()
    topic, dlq = topics()
    settings = Settings(kafka_bootstrap=bootstrap, topic=topic, dead_letter_topic=dlq, partitions=1)
    body = event_list([exec_event(), *([0] * 5000)])  # type: ignore[list-item]
    with TestClient(create_ingest_app(settings)) as client:
        reply: dict[str, Any] = client.post("/audit/webhook", content=body).json()
    assert (reply["accepted"], reply["rejected"], reply["quarantined"]) == (1, 5000, MAX_KEPT_REJECTED)
    letters = topic_records(bootstrap, dlq, expect_at_least=MAX_KEPT_REJECTED)
    assert len(letters) == MAX_KEPT_REJECTED
    assert len(topic_records(bootstrap, topic)) == 1
