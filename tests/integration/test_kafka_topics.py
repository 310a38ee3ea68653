"""Topics on the real Kafka that cannot be used: one Kafka refuses to create (a replication factor of 3 on the test's
single broker) stops `ingest`, `detect` and `replay --to-kafka` in one line with the broker's reason, status 2; a
topic deleted under a running `ingest` makes it unready, the cause logged; the topics named by the flags are the
ones used."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from auditwatch.server import create_ingest_app
from auditwatch.settings import Settings
from ingest.kafka import READY_CACHE_S, TopicSpec, ensure_topics
from tests.support.cli import auditwatch_process
from tests.support.events import event_list, exec_event
from tests.support.processes import Proc, free_port
from tests.support.services import delete_topics, kafka_bootstrap, topic_names, topic_records

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


def events(prefix: str, n: int) -> list[dict[str, Any]]:
    """`n` events of distinct auditIDs, and one item that is no audit event (no auditID): a dead letter."""
    items = [exec_event() | {"auditID": f"{prefix}-{i}"} for i in range(n)]
    bad = copy.deepcopy(exec_event())
    del bad["auditID"]
    return [*items, bad]


def audit_ids(records: list[Any]) -> list[str]:
    return sorted(orjson.loads(r.value)["auditID"] for r in records)


def reasons(records: list[Any]) -> list[str]:
    return [orjson.loads(r.value)["reason"] for r in records]


def test_the_dead_letter_topic_flag_names_the_topic_of_ingest_replay_and_detect(tmp_path: Path) -> None:
    bootstrap = kafka_bootstrap()
    topic = f"named-{uuid.uuid4().hex[:8]}"
    dlq = f"{topic}-letters"
    port = free_port()
    ingest = Proc(["ingest", "--kafka", bootstrap, "--topic", topic, "--dead-letter-topic", dlq, "--port", str(port)],
                  tmp_path / "ingest.log")  # fmt: skip
    try:
        ingest.wait_http(f"http://127.0.0.1:{port}/readyz")
        sent = events("ingest", 4)
        reply = httpx.post(f"http://127.0.0.1:{port}/audit/webhook", content=event_list(sent), timeout=30)
        assert reply.status_code == 200 and reply.json()["rejected"] == 1, reply.text
    finally:
        assert ingest.stop() in (0, -15), ingest.output()
    assert f"topic {topic} (dead letters: {dlq})" in ingest.output()  # the banner
    assert audit_ids(topic_records(bootstrap, topic, expect_at_least=4)) == [f"ingest-{i}" for i in range(4)]
    assert reasons(topic_records(bootstrap, dlq)) == ["missing auditID"]

    archive = tmp_path / "audit.log"
    archive.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events("replay", 2)))
    replayed = auditwatch_process("replay", "--to-kafka", bootstrap, "--topic", f"{topic}-replay",
                                  "--dead-letter-topic", f"{dlq}-replay", "--quiet", str(archive))  # fmt: skip
    assert replayed.code == 0, replayed.err
    assert audit_ids(topic_records(bootstrap, f"{topic}-replay", expect_at_least=2)) == ["replay-0", "replay-1"]
    assert reasons(topic_records(bootstrap, f"{dlq}-replay")) == ["missing auditID"]

    detect = Proc(["detect", "--kafka", bootstrap, "--topic", f"{topic}-detect", "--dead-letter-topic",
                   f"{dlq}-detect", "--group", topic, "--db", f"sqlite:///{tmp_path / 'a.db'}"],
                  tmp_path / "detect.log")  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "auditwatch" not in detect.output() and detect.popen.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # the banner comes once the topics are there
        assert f"{dlq}-detect" in topic_names(bootstrap), detect.output()
    finally:
        detect.stop()
