"""Distributed mode against real Kafka and PostgreSQL: webhook -> Kafka -> detect -> PostgreSQL -> REST.

Every test uses its own topic, consumer group and database; fault tests use private servers they can
stop. Waits are bounded; processes are always killed at the end.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from auditwatch.consumer_topic import TOPIC_CHECK_S
from auditwatch.replay import replay
from bench.proc_cpu import cpu_seconds
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from simulation import ClusterProfile, attack_events, benign_events, write_jsonl
from tests.support.events import another_like, event_list, exec_event, scenario_events
from tests.support.problems import problem_detail
from tests.support.processes import Proc, free_port
from tests.support.services import (
    PrivateKafka,
    PrivatePostgres,
    create_database,
    delete_topics,
    kafka_bootstrap,
    topic_records,
)
from tests.support.stateful import HEADER, SEQUENCE, at, grant, workload

pytestmark = pytest.mark.integration


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, procs: list[Proc] = ()) -> None:  # type: ignore[assignment]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.args[0]}:\n{p.output()[-3000:]}" for p in procs)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{logs}")


def alert_ids(db_url: str) -> list[str]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alerts"):
                return []
            return [row[0] for row in conn.execute(sa.text("select id from alerts"))]
    except sa.exc.OperationalError:
        return []
    finally:
        engine.dispose()


def corpus(path: Path, *, stories: int, benign: int = 12_000, seed: int = 5) -> set[str]:
    """Realistic traffic with `stories` attack stories woven in; returns the alert ids a local replay finds."""
    profile = ClusterProfile(nodes=10, seed=seed)
    events = list(benign_events(profile, count=benign))
    for i in range(stories):
        events.extend(ev for _, ev in attack_events(profile, at=profile.start + timedelta(seconds=60 + 50 * i)))
    events.sort(key=lambda e: e["stageTimestamp"])
    write_jsonl(events, path)
    found: list[str] = []
    replay([str(path)], Pipeline(load_rules(["builtin"])), emit=lambda a: found.append(a.id))
    return set(found)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.kill9()


class TwoTopics:
    """A topic's records before it is deleted (`first`) and after it is created again (`second`), as archives that
    `publish` sends with `replay --to-kafka`; `expected`: the alert ids of a replay of both, in order."""

    def __init__(self, tmp_path: Path, topic: str, partitions: int, first: list[Any], second: list[Any]) -> None:
        self.tmp_path, self.topic, self.partitions = tmp_path, topic, partitions
        self.paths = {}
        for name, events in (("first", first), ("second", second), ("both", first + second)):
            self.paths[name] = tmp_path / f"{name}.jsonl"
            self.paths[name].write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
        self.expected = self.alerts("both")

    def alerts(self, name: str) -> set[str]:
        found: list[str] = []
        replay([str(self.paths[name])], Pipeline(load_rules(["builtin"])), emit=lambda a: found.append(a.id))
        return set(found)

    def publish(self, name: str) -> None:
        proc = Proc(["replay", str(self.paths[name]), "--to-kafka", kafka_bootstrap(), "--topic", self.topic,
                     "--partitions", str(self.partitions)], self.tmp_path / f"publish-{name}.log")  # fmt: skip
        assert proc.popen.wait(timeout=120) == 0, proc.output()


def test_webhook_to_rest_through_kafka_and_postgres(tmp_path: Path, pg_url: str, procs: list[Proc]) -> None:
    bootstrap = kafka_bootstrap()
    topic, dlq = unique("audit"), unique("audit-dlq")
    env = {"AUDITWATCH_DEAD_LETTER_TOPIC": dlq}
    detect = Proc(["detect", "--kafka", bootstrap, "--topic", topic, "--group", unique("g"), "--db", pg_url,
                   "--partitions", "3"], tmp_path / "detect.log", env)  # fmt: skip
    api_port, ingest_port = free_port(), free_port()
    api = Proc(["api", "--port", str(api_port), "--db", pg_url], tmp_path / "api.log")
    ingest = Proc(["ingest", "--kafka", bootstrap, "--topic", topic, "--port", str(ingest_port), "--partitions", "3"],
                  tmp_path / "ingest.log", env)  # fmt: skip
    procs += [detect, api, ingest]
    ingest.wait_http(f"http://127.0.0.1:{ingest_port}/readyz")
    api.wait_http(f"http://127.0.0.1:{api_port}/readyz")

    bad = copy.deepcopy(exec_event())
    del bad["auditID"]
    resp = httpx.post(f"http://127.0.0.1:{ingest_port}/audit/webhook?timeout=30s",
                      content=event_list([*scenario_events(), bad]), timeout=30)  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == len(scenario_events()) and resp.json()["rejected"] == 1

    def three_alerts() -> bool:
        page = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/alerts", timeout=5).json()
        return len(page["items"]) == 6

    wait_for("alerts at the api", three_alerts, 30, [detect, ingest, api])
    page = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/alerts", timeout=5).json()
    assert sorted(a["rule_id"] for a in page["items"]) == [
        "cluster-admin-binding",
        "exec-credential-file-access",
        "exec-shell-command-payload",
        "pod-exec-attach",
        "privileged-container",
        "untrusted-image-registry",
    ]
    assert all(a["origin"].startswith(f"kafka:{topic}/") for a in page["items"])

    (dead,) = topic_records(bootstrap, dlq)
    letter = orjson.loads(dead.value)
    assert letter["reason"] == "missing auditID" and letter["origin"].endswith(f"#items[{len(scenario_events())}]")
    records = topic_records(bootstrap, topic, expect_at_least=len(scenario_events()))
    keys = {r.key for r in records}
    assert b"mallory@example.com" in keys and b"system:kube-controller-manager" in keys  # keyed by principal


def test_broker_down_gives_503_and_every_200_is_in_the_topic(tmp_path: Path, procs: list[Proc]) -> None:
    broker = PrivateKafka(tmp_path / "kafka")
    broker.start()
    try:
        topic = unique("audit")
        port = free_port()
        ingest = Proc(["ingest", "--kafka", broker.bootstrap, "--topic", topic, "--port", str(port)],
                      tmp_path / "ingest.log", {"AUDITWATCH_SEND_TIMEOUT_S": "4"})  # fmt: skip
        procs.append(ingest)
        ingest.wait_http(f"http://127.0.0.1:{port}/readyz")
        url = f"http://127.0.0.1:{port}/audit/webhook?timeout=30s"
        acknowledged: set[str] = set()
        statuses: list[int] = []

        def post(i: int) -> int:
            event = exec_event()
            event["auditID"] = f"00000000-0000-4000-8000-{i:012d}"
            resp = httpx.post(url, content=event_list([event]), timeout=30)
            if resp.status_code == 200:
                acknowledged.add(event["auditID"])
            else:
                assert "retry later" in problem_detail(resp, 503) and resp.headers["Retry-After"]
            statuses.append(resp.status_code)
            return resp.status_code

        for i in range(20):
            assert post(i) == 200
        broker.stop()
        i = 20
        deadline = time.monotonic() + 60
        while post(i) != 503:  # the next batch after the broker went away
            i += 1
            assert time.monotonic() < deadline, "ingest never answered 503 with the broker down"
        i += 1
        assert post(i) == 503  # and keeps doing so
        broker.start()
        deadline = time.monotonic() + 90
        while post(i + 1) != 200:
            i += 1
            assert time.monotonic() < deadline, (
                f"ingest did not recover after the broker came back: {ingest.output()[-2000:]}"
            )
            time.sleep(0.5)
        for j in range(i + 2, i + 12):
            assert post(j) == 200
        in_topic = {
            orjson.loads(r.value)["auditID"]
            for r in topic_records(broker.bootstrap, topic, expect_at_least=len(acknowledged))
        }
        assert acknowledged <= in_topic, f"lost after a 200: {sorted(acknowledged - in_topic)[:5]}"
        assert 503 in statuses
    finally:
        broker.stop()


def test_detector_kill_9_mid_stream_then_two_detectors_finish_exactly(
    tmp_path: Path, pg_url: str, procs: list[Proc]
) -> None:
    bootstrap = kafka_bootstrap()
    expected = corpus(tmp_path / "events.jsonl", stories=40)
    assert len(expected) >= 250
    topic, group = unique("audit"), unique("g")
    published = Proc(["replay", str(tmp_path / "events.jsonl"), "--to-kafka", bootstrap, "--topic", topic,
                      "--partitions", "4"], tmp_path / "publish.log")  # fmt: skip
    assert published.popen.wait(timeout=120) == 0, published.output()
    args = ["detect", "--kafka", bootstrap, "--topic", topic, "--group", group, "--db", pg_url]
    first = Proc(args, tmp_path / "detect-1.log", {"AUDITWATCH_DETECT_MAX_RECORDS": "500"})
    procs.append(first)
    wait_for("the first alerts", lambda: len(alert_ids(pg_url)) > 0, 60, [first])
    first.kill9()
    partial = len(alert_ids(pg_url))
    assert 0 < partial < len(expected), "kill -9 came too late to be mid-stream"
    second = Proc(args, tmp_path / "detect-2.log")
    third = Proc(args, tmp_path / "detect-3.log")  # a rebalance: two members share the partitions
    procs += [second, third]
    wait_for("every alert", lambda: len(alert_ids(pg_url)) >= len(expected), 90, [second, third])
    time.sleep(2)  # anything extra would show up now
    ids = alert_ids(pg_url)
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected
    assert second.stop() == 0 and third.stop() == 0


def test_postgres_down_then_back_loses_nothing(tmp_path: Path, procs: list[Proc]) -> None:
    bootstrap = kafka_bootstrap()
    pg = PrivatePostgres()
    pg.start()
    try:
        db_url = create_database(pg.url)
        first_half = corpus(tmp_path / "part1.jsonl", stories=10, benign=4000, seed=11)
        second_half = corpus(tmp_path / "part2.jsonl", stories=10, benign=4000, seed=12)
        topic = unique("audit")
        detect = Proc(["detect", "--kafka", bootstrap, "--topic", topic, "--group", unique("g"), "--db", db_url,
                       "--partitions", "2"], tmp_path / "detect.log")  # fmt: skip
        procs.append(detect)

        def publish(path: Path) -> None:
            proc = Proc(["replay", str(path), "--to-kafka", bootstrap, "--topic", topic, "--partitions", "2"],
                        tmp_path / f"publish-{path.stem}.log")  # fmt: skip
            assert proc.popen.wait(timeout=120) == 0, proc.output()

        publish(tmp_path / "part1.jsonl")
        wait_for("the first half", lambda: set(alert_ids(db_url)) == first_half, 60, [detect])
        pg.stop()
        publish(tmp_path / "part2.jsonl")
        wait_for("a failed write", lambda: "alert store unavailable" in detect.output(), 60, [detect])
        pg.start()
        wait_for("both halves", lambda: set(alert_ids(db_url)) == first_half | second_half, 90, [detect])
        assert detect.popen.poll() is None  # it waited for the database instead of dying
        assert detect.stop() == 0
    finally:
        pg.cleanup()


def test_detector_state_is_checkpointed_with_offsets_and_survives_kill_9(
    tmp_path: Path, pg_url: str, procs: list[Proc]
) -> None:
    """A sequence whose first step was consumed before a kill -9 completes after the restart, exactly once."""
    bootstrap = kafka_bootstrap()
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "grant-then-deploy.yaml").write_text(
        HEADER.format(id="grant-then-deploy", name="Grant then deploy") + SEQUENCE
    )
    topic, group = unique("audit"), unique("g")
    args = ["detect", "--kafka", bootstrap, "--topic", topic, "--group", group, "--db", pg_url, "--rules", str(rules),
            "--partitions", "2"]  # fmt: skip

    def publish(name: str, events: list[dict[str, Any]]) -> None:
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
        proc = Proc(
            ["replay", str(path), "--to-kafka", bootstrap, "--topic", topic, "--partitions", "2"],
            tmp_path / f"{name}.log",
        )
        assert proc.popen.wait(timeout=120) == 0, proc.output()

    def checkpoints() -> list[tuple[str, int]]:
        engine = sa.create_engine(pg_url)
        try:
            with engine.connect() as conn:
                if not sa.inspect(conn).has_table("detector_state"):
                    return []
                return [(r[0], r[1]) for r in conn.execute(sa.text("select scope, position from detector_state"))]
        finally:
            engine.dispose()

    noise = [
        at(exec_event(), i, n=100 + i, user={"username": "bob@example.com", "groups": ["devs"]}) for i in range(50)
    ]
    publish("step1", [at(grant(), 0, n=1), *noise])
    first = Proc(args, tmp_path / "detect-1.log", {"AUDITWATCH_DEBUG": "1"})
    procs.append(first)
    wait_for("a checkpoint with an offset", lambda: any(pos for _, pos in checkpoints()), 60, [first])
    first.kill9()
    assert alert_ids(pg_url) == []
    publish("step2", [at(workload(), 120, n=2)])
    second = Proc(args, tmp_path / "detect-2.log", {"AUDITWATCH_DEBUG": "1"})
    procs.append(second)
    wait_for("the sequence alert", lambda: len(alert_ids(pg_url)) == 1, 60, [second])
    time.sleep(2)
    assert len(alert_ids(pg_url)) == 1
    assert all(scope.startswith(f"kafka:{group}:{topic}:") for scope, _ in checkpoints())


def test_a_topic_deleted_and_created_again_while_detect_is_down_is_read_from_its_start(
    tmp_path: Path, pg_url: str, procs: list[Proc]
) -> None:
    """ingest creates again a topic deleted, and the new topic's offsets start over: detect, restarted with state
    checkpoints that hold the old topic's offsets, reads the new topic from its start instead of skipping up to
    them. (A topic deleted under a running detect: the next test.)"""
    bootstrap = kafka_bootstrap()
    topic = unique("recreated")
    first = [another_like(e, n) for n in (1, 2) for e in scenario_events()]
    second = [another_like(e, 3) for e in scenario_events()]  # half as many records on each partition as `first`
    topics = TwoTopics(tmp_path, topic, 2, first, second)

    def checkpointed() -> int:
        engine = sa.create_engine(pg_url)
        try:
            with engine.connect() as conn:
                if not sa.inspect(conn).has_table("detector_state"):
                    return 0
                return int(conn.execute(sa.text("select coalesce(sum(position), 0) from detector_state")).scalar_one())
        finally:
            engine.dispose()

    def start() -> Proc:
        detect = Proc(["detect", "--kafka", bootstrap, "--topic", topic, "--group", topic, "--db", pg_url],
                      tmp_path / "detect.log")  # fmt: skip
        procs.append(detect)
        return detect

    topics.publish("first")
    detect = start()
    wait_for("the first topic's offsets checkpointed", lambda: checkpointed() == len(first), 90, [detect])
    assert detect.stop() == 0, detect.output()[-3000:]
    delete_topics(bootstrap, [topic])
    topics.publish("second")  # creates the topic again
    detect = start()
    wait_for("the second topic's alerts", lambda: set(alert_ids(pg_url)) == topics.expected, 90, [detect])
    assert "the topic was created again, read from its start" in detect.output()
    assert sorted(alert_ids(pg_url)) == sorted(topics.expected)


def test_detect_waits_for_its_deleted_topic_cheaply_and_reads_it_when_created_again(
    tmp_path: Path, pg_url: str, procs: list[Proc]
) -> None:
    """While its topic is missing, detect holds no partition and asks the broker about the topic every few seconds
    (aiokafka asked in a loop, half a core, while the partitions of a deleted topic stayed assigned: until the
    revocation's offset commit, for a topic that no longer existed, gave up after 15 s). It says so once, sees the
    topic created again within seconds (aiokafka looked every 5 minutes), and reads it from offset 0: the state
    checkpoints of the old topic's partitions are rewritten at 0 when it is found deleted, so a new topic with as
    many records as the old one's offsets is not skipped."""
    bootstrap = kafka_bootstrap()
    topic = unique("missing")
    second = [another_like(e, n) for n in (1, 2) for e in scenario_events()]  # the new topic ends past the old one
    topics = TwoTopics(tmp_path, topic, 1, scenario_events(), second)
    before = topics.alerts("first")
    assert before < topics.expected

    topics.publish("first")
    detect = Proc(["detect", "--kafka", bootstrap, "--topic", topic, "--group", topic, "--db", pg_url],
                  tmp_path / "detect.log")  # fmt: skip
    procs.append(detect)
    wait_for("the first topic's alerts", lambda: set(alert_ids(pg_url)) == before, 90, [detect])
    delete_topics(bootstrap, [topic])
    used, started = cpu_seconds(detect.popen.pid), time.monotonic()
    time.sleep(8)
    cores = (cpu_seconds(detect.popen.pid) - used) / (time.monotonic() - started)
    assert detect.popen.poll() is None, detect.output()[-3000:]
    assert cores < 0.2, f"detect used {cores:.2f} of a core while its topic was missing"
    waiting = f"topic {topic} does not exist (deleted, or not created yet): waiting for it"
    wait_for("detect to say it waits for its topic", lambda: waiting in detect.output(), 30, [detect])
    topics.publish("second")  # creates the topic again
    created = time.monotonic()
    wait_for("the second topic's alerts", lambda: set(alert_ids(pg_url)) == topics.expected, 90, [detect])
    assert time.monotonic() - created < 10 * TOPIC_CHECK_S, detect.output()[-3000:]
    assert detect.output().count(waiting) == 1
    assert f"topic {topic} exists again: consuming it" in detect.output()
    assert "resuming at offset 0" in detect.output()
