"""Topics on the real Kafka that cannot be used: one Kafka refuses to create (a replication factor of 3 on the test's
single broker) stops `ingest`, `detect` and `replay --to-kafka` in one line with the broker's reason, status 2; a
topic deleted under a running `ingest` makes it unready, the cause logged."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from auditwatch.server import create_ingest_app
from auditwatch.settings import Settings
from ingest.kafka import READY_CACHE_S, TopicSpec, ensure_topics
from tests.support.cli import auditwatch_process
from tests.support.events import event_list, exec_event
from tests.support.processes import free_port
from tests.support.services import delete_topics, kafka_bootstrap, topic_names

pytestmark = pytest.mark.integration


def test_a_topic_kafka_refuses_to_create_stops_every_command_in_one_line(tmp_path: Path) -> None:
    bootstrap = kafka_bootstrap()
    topic = f"rf3-{uuid.uuid4().hex[:8]}"
    env = {"AUDITWATCH_REPLICATION_FACTOR": "3", "AUDITWATCH_TOPIC": topic}
    events = tmp_path / "audit.log"
    events.write_bytes(orjson.dumps(exec_event()) + b"\n")
    db = f"sqlite:///{tmp_path / 'a.db'}"
    commands = {
        "ingest": ["ingest", "--kafka", bootstrap, "--port", str(free_port())],
        "detect": ["detect", "--kafka", bootstrap, "--db", db, "--kafka-wait", "30"],
        "replay": ["replay", "--to-kafka", bootstrap, str(events)],
    }
    for name, args in commands.items():
        started = time.monotonic()
        result = auditwatch_process(*args, env=env)
        assert (result.code, result.out) == (2, ""), (name, result)  # no banner: it never ran
        assert len(result.err.splitlines()) == 1, (name, result.err)
        assert result.err.startswith(f"auditwatch: Kafka at {bootstrap} refused to create topic {topic} ("), result.err
        assert "INVALID_REPLICATION_FACTOR: " in result.err and "1 broker" in result.err  # the broker's reason
        assert result.err.rstrip().endswith(
            "set AUDITWATCH_REPLICATION_FACTOR to at most the number of brokers, or create the topic yourself"
        )
        assert time.monotonic() - started < 25, name  # at once: detect does not wait out --kafka-wait for it
    assert topic not in topic_names(bootstrap)


def test_a_topic_deleted_under_a_running_ingest_makes_it_unready(caplog: pytest.LogCaptureFixture) -> None:
    bootstrap = kafka_bootstrap()
    topic = f"deleted-{uuid.uuid4().hex[:8]}"
    settings = Settings(kafka_bootstrap=bootstrap, topic=topic, dead_letter_topic=f"{topic}-dlq", partitions=1)
    asyncio.run(ensure_topics(bootstrap, [TopicSpec(topic, 1, 1)]))
    caplog.set_level(logging.WARNING)
    with TestClient(create_ingest_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        delete_topics(bootstrap, [topic])
        deadline = time.monotonic() + 30
        while (ready := client.get("/readyz")).status_code == 200 and time.monotonic() < deadline:
            time.sleep(READY_CACHE_S / 2)
        assert ready.status_code == 503
        assert ready.json()["detail"] == "Kafka unavailable: topic missing"  # generic: no topic, no broker
        started = time.monotonic()
        post = client.post("/audit/webhook", content=event_list([exec_event()]))
        assert post.status_code == 503 and time.monotonic() - started < 10  # not at the 20-s batch deadline
    causes = [r.getMessage() for r in caplog.records if "not ready" in r.getMessage()]
    assert len(causes) == 1, causes  # once, not per probe
    assert f"topic {topic} is not on Kafka at {bootstrap} (Broker: Unknown topic or partition)" in causes[0]
