"""`detect` whose broker is killed while it runs: the Kafka client's reconnection errors (ten a second) reach the
log once a minute each, not once per attempt (auditwatch/logs.py, `RepeatLimit`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import Proc
from tests.support.services import PrivateKafka

pytestmark = pytest.mark.integration
WATCHED_S = 20.0


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
