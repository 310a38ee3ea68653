"""`detect` whose broker is killed while it runs: the Kafka client's reconnection errors (ten a second) reach the
log once a minute each, not once per attempt (auditwatch/logs.py, `RepeatLimit`); whose topic is deleted while it
runs: it still stops when told to."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.support.cli import auditwatch_process
from tests.support.events import scenario_events
from tests.support.processes import Proc
from tests.support.services import PrivateKafka, delete_topics, kafka_bootstrap

pytestmark = pytest.mark.integration
WATCHED_S = 20.0
STOP_WAITING_S = 20.0  # generous: detect waiting for its topic stops in well under a second


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateKafka]:
    kafka = PrivateKafka(tmp_path / "kafka")
    kafka.start()
    yield kafka
    kafka.stop()


def test_a_broker_killed_under_detect_gives_a_bounded_number_of_log_lines(tmp_path: Path, broker: PrivateKafka) -> None:
    detect = Proc(["detect", "--kafka", broker.bootstrap, "--db", f"sqlite:///{tmp_path / 'd.db'}", "--partitions",
                   "1"], tmp_path / "detect.log")  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "partitions assigned" not in detect.output():
            assert time.monotonic() < deadline and detect.popen.poll() is None, detect.output()[-3000:]
            time.sleep(0.2)
        before = len(detect.output().splitlines())
        assert broker.proc is not None
        broker.proc.kill()  # SIGKILL: no goodbye to the clients
        broker.proc.wait(timeout=30)
        time.sleep(WATCHED_S)
        assert detect.popen.poll() is None, detect.output()[-3000:]  # still there, waiting for the broker
        lines = detect.output().splitlines()[before:]
    finally:
        detect.kill9()
    kafka_lines = [line for line in lines if " aiokafka" in line]
    assert kafka_lines, lines  # it does say the broker is gone
    assert len(lines) <= 30, f"{len(lines)} lines in {WATCHED_S:g} s:\n" + "\n".join(lines[:60])


def test_detect_stops_on_sigterm_after_its_topic_was_deleted(tmp_path: Path) -> None:
    """Its offset commit, which Kafka refuses for a topic it no longer has, is given up (aiokafka would retry it
    for ever, and detect never stopped); waiting for the topic to be created again, it stops at once."""
    bootstrap = kafka_bootstrap()
    topic = f"vanished-{uuid.uuid4().hex[:8]}"
    archive = tmp_path / "audit.log"
    archive.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in scenario_events()))
    published = auditwatch_process("replay", "--to-kafka", bootstrap, "--topic", topic, "--partitions", "1",
                                   "--quiet", str(archive))  # fmt: skip
    assert published.code == 0, published.err
    detect = Proc(["detect", "--kafka", bootstrap, "--topic", topic, "--group", topic, "--partitions", "1", "--db",
                   f"sqlite:///{tmp_path / 'd.db'}"], tmp_path / "detect.log")  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "batch records=" not in detect.output():
            assert time.monotonic() < deadline and detect.popen.poll() is None, detect.output()[-3000:]
            time.sleep(0.2)
        delete_topics(bootstrap, [topic])
        while f"topic {topic} does not exist" not in detect.output():  # waiting for it
            assert time.monotonic() < deadline and detect.popen.poll() is None, detect.output()[-3000:]
            time.sleep(0.2)
        detect.popen.send_signal(signal.SIGTERM)
        try:
            status = detect.popen.wait(timeout=STOP_WAITING_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"detect did not stop: {detect.output()[-3000:]}") from None
    finally:
        detect.kill9()
    assert status == 0, detect.output()[-3000:]
    assert "auditwatch detect: stopped after" in detect.output()
