"""Topics on the real Kafka: one Kafka refuses to create (a replication factor of 3 on the test's single broker)
stops `ingest`, `detect` and `replay --to-kafka` in one line with the broker's reason, status 2, and keeps a running
`ingest` unready; a topic deleted under a running `ingest` is created again, as it was, and batches land in it; the
topics named by the flags are the ones used."""

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
from aiokafka.admin import AIOKafkaAdminClient

from auditwatch.server import create_ingest_app
from auditwatch.settings import Settings
from ingest.kafka import RECREATE_INTERVAL_S, TopicSpec, ensure_topics
from tests.support.cli import auditwatch_process
from tests.support.client import TestClient
from tests.support.events import event_list, exec_event
from tests.support.processes import Proc, free_port
from tests.support.services import delete_topics, kafka_bootstrap, topic_names, topic_records, topics_listed

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


def partitions_of(bootstrap: str, topic: str) -> int:
    async def described() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            (found,) = await admin.describe_topics([topic])
            return len(found["partitions"])
        finally:
            await admin.close()

    return asyncio.run(described())


@pytest.mark.parametrize("deleted", ["audit", "dead-letter"])
def test_a_topic_deleted_under_a_running_ingest_is_created_again_as_it_was(deleted: str, tmp_path: Path) -> None:
    bootstrap = kafka_bootstrap()
    topic = f"recreated-{uuid.uuid4().hex[:8]}"
    dlq, gone = f"{topic}-dlq", topic if deleted == "audit" else f"{topic}-dlq"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ingest = Proc(["ingest", "--kafka", bootstrap, "--topic", topic, "--dead-letter-topic", dlq, "--partitions", "3",
                   "--port", str(port)], tmp_path / "ingest.log")  # fmt: skip
    try:
        ingest.wait_http(f"{base}/readyz")
        before = httpx.post(f"{base}/audit/webhook", content=event_list(events("before", 5)), timeout=30)
        assert before.status_code == 200, before.text  # the producer knows both topics' partitions
        delete_topics(bootstrap, [gone])
        deleted_at = time.monotonic()
        said = (f"topic {gone} was missing on Kafka at {bootstrap}: created it again "
                f"({3 if deleted == 'audit' else 1} partitions, replication factor 1)")  # fmt: skip
        ready = httpx.get(f"{base}/readyz", timeout=10)
        while (said not in ingest.output() or ready.status_code != 200) and time.monotonic() < deleted_at + 30:
            time.sleep(0.2)  # asked as a kubelet asks: the probe finds the topic missing
            ready = httpx.get(f"{base}/readyz", timeout=10)
        assert said in ingest.output() and ready.status_code == 200, (ready.text, ingest.output()[-3000:])
        assert partitions_of(bootstrap, gone) == (3 if deleted == "audit" else 1)

        after = events("after", 20)
        reply = httpx.post(f"{base}/audit/webhook", content=event_list(after), timeout=30)
        assert reply.status_code == 200, reply.text
        assert reply.json()["accepted"] == 20 and reply.json()["rejected"] == 1
        landed = audit_ids(topic_records(bootstrap, topic, expect_at_least=20 if deleted == "audit" else 25))
        sent_after = sorted(e["auditID"] for e in after[:-1])
        if deleted == "audit":
            assert landed == sent_after  # every event of the batch, in the new topic (the old records went with it)
        else:
            assert landed == sorted([*sent_after, *(e["auditID"] for e in events("before", 5)[:-1])])
        letters = reasons(topic_records(bootstrap, dlq, expect_at_least=1 if deleted == "dead-letter" else 2))
        assert letters == ["missing auditID"] * (1 if deleted == "dead-letter" else 2)
    finally:
        status = ingest.stop()
    assert status in (0, -15), ingest.output()  # -15: uvicorn re-raises SIGTERM after its shutdown
    assert ingest.output().count("created it again") == 1, ingest.output()


def test_the_batch_after_one_that_failed_on_a_deleted_topic_creates_it_again(caplog: pytest.LogCaptureFixture) -> None:
    """No readiness probe in between: the failed batch makes the next one probe first, which finds the topic gone."""
    bootstrap = kafka_bootstrap()
    topic = f"produced-{uuid.uuid4().hex[:8]}"
    settings = Settings(kafka_bootstrap=bootstrap, topic=topic, dead_letter_topic=f"{topic}-dlq", partitions=2,
                        send_timeout_s=3)  # fmt: skip
    caplog.set_level(logging.WARNING)
    with TestClient(create_ingest_app(settings)) as client:
        assert client.post("/audit/webhook", content=event_list(events("before", 3)[:-1])).status_code == 200
        delete_topics(bootstrap, [topic])
        started = time.monotonic()
        replies = []
        while not replies or replies[-1] != 200 and time.monotonic() - started < 30:  # each batch fails in 3 s
            replies.append(client.post("/audit/webhook", content=event_list(events("after", 10)[:-1])).status_code)
        assert replies[-1] == 200 and len(replies) <= 3, replies
    assert audit_ids(topic_records(bootstrap, topic, expect_at_least=10)) == sorted(f"after-{i}" for i in range(10))
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"topic {topic} was missing")]
    assert said == [f"topic {topic} was missing on Kafka at {bootstrap}: created it again (2 partitions, "
                    "replication factor 1)"]  # fmt: skip


def test_a_topic_is_created_again_at_most_every_few_seconds(caplog: pytest.LogCaptureFixture) -> None:
    bootstrap = kafka_bootstrap()
    topic = f"twice-{uuid.uuid4().hex[:8]}"
    settings = Settings(kafka_bootstrap=bootstrap, topic=topic, dead_letter_topic=f"{topic}-dlq", partitions=1)
    caplog.set_level(logging.WARNING)

    def created_again() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith(f"topic {topic} was missing")]

    with TestClient(create_ingest_app(settings)) as client:
        answers = []
        for times in (1, 2):
            delete_topics(bootstrap, [topic])
            deadline = time.monotonic() + 30
            while (len(created_again()) < times or answers[-1] != 200) and time.monotonic() < deadline:
                answers.append(client.get("/readyz").status_code)
                time.sleep(0.1)
            assert len(created_again()) == times and answers[-1] == 200, answers
    first, second = created_again()
    assert second.created - first.created >= RECREATE_INTERVAL_S  # unready meanwhile
    assert 503 in answers


def test_a_topic_kafka_refuses_keeps_a_running_ingest_unready_said_once(caplog: pytest.LogCaptureFixture) -> None:
    """As when ingest started while Kafka was away, so it could not create them: the topics are created when Kafka
    answers, unless it refuses (here a replication factor above the number of brokers); then batches keep getting
    503 and the refusal is said once per topic, not at every attempt."""
    bootstrap = kafka_bootstrap()
    topic = f"refused-{uuid.uuid4().hex[:8]}"
    settings = Settings(kafka_bootstrap=bootstrap, topic=topic, dead_letter_topic=f"{topic}-dlq", replication_factor=3)
    caplog.set_level(logging.WARNING)
    with TestClient(create_ingest_app(settings, create_topics=False)) as client:
        deadline = time.monotonic() + 2 * RECREATE_INTERVAL_S + 1  # time for two more attempts, were they made
        while time.monotonic() < deadline:
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["detail"] == "Kafka unavailable: topic missing"
            time.sleep(0.5)
        assert client.post("/audit/webhook", content=event_list([exec_event()])).status_code == 503
    refusals = [r.getMessage() for r in caplog.records if "refused to create topic" in r.getMessage()]
    assert len(refusals) == 1, refusals  # the dead-letter topic is not asked for without the audit topic
    assert refusals[0].startswith(f"Kafka at {bootstrap} refused to create topic {topic} (INVALID_REPLICATION_FACTOR")
    assert not {topic, f"{topic}-dlq"} & topic_names(bootstrap)


def colliding_topic(bootstrap: str, name: str | None = None) -> str:
    """An audit topic name Kafka refuses to create while it would create its dead-letter topic: `x_y` collides
    with an existing `x.y` (Kafka's metric names make '.' and '_' the same), `x_y-dlq` with nothing. `name`: the
    one to make sure `x.y` is there for."""
    name = name or f"collides_{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(bootstrap, [TopicSpec(name.replace("_", "."), 1, 1)]))
    return name


def test_no_dead_letter_topic_is_created_when_kafka_refuses_the_audit_topic(tmp_path: Path) -> None:
    bootstrap = kafka_bootstrap()
    topic = colliding_topic(bootstrap)
    events = tmp_path / "audit.log"
    events.write_bytes(orjson.dumps(exec_event()) + b"\n")
    topics = ["--topic", topic, "--dead-letter-topic", f"{topic}-dlq"]
    commands = {
        "ingest": ["ingest", "--kafka", bootstrap, *topics, "--port", str(free_port())],
        "detect": ["detect", "--kafka", bootstrap, *topics, "--db", f"sqlite:///{tmp_path / 'a.db'}"],
        "replay": ["replay", "--to-kafka", bootstrap, *topics, str(events)],
    }
    for name, args in commands.items():
        colliding_topic(bootstrap, topic)  # again: a test session beside this one may have deleted it meanwhile
        result = auditwatch_process(*args)
        assert (result.code, result.out) == (2, ""), (name, result)
        assert result.err.startswith(f"auditwatch: Kafka at {bootstrap} refused to create topic {topic} ("), result.err
        assert f"INVALID_TOPIC: Topic '{topic}' collides with existing topic" in result.err, result.err
        assert result.err.rstrip().endswith("): choose another name (--topic, --dead-letter-topic)"), result.err
        assert not {topic, f"{topic}-dlq"} & topic_names(bootstrap), name


def test_a_running_ingest_creates_no_dead_letter_topic_beside_an_audit_topic_kafka_refuses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bootstrap = kafka_bootstrap()
    topic = colliding_topic(bootstrap)
    settings = Settings(kafka_bootstrap=bootstrap, topic=topic, dead_letter_topic=f"{topic}-dlq")
    caplog.set_level(logging.WARNING)
    with TestClient(create_ingest_app(settings, create_topics=False)) as client:
        deadline = time.monotonic() + 2 * RECREATE_INTERVAL_S + 1  # time for two more attempts, were they made
        while time.monotonic() < deadline:
            assert client.get("/readyz").status_code == 503
            time.sleep(0.5)
    refusals = [r.getMessage() for r in caplog.records if "refused to create topic" in r.getMessage()]
    assert len(refusals) == 1 and f"refused to create topic {topic} (" in refusals[0], refusals
    assert not {topic, f"{topic}-dlq"} & topic_names(bootstrap)


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
        assert f"{dlq}-detect" in topics_listed(bootstrap, {f"{dlq}-detect"}), detect.output()
    finally:
        detect.stop()
