"""`ingest --workers N` against real Kafka: N worker processes share the port, every event of every batch lands
on the topic exactly once, keyed (so partitioned) by its principal, and each record is the event's text as it
was received; SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from ingest.kafka import partition_index
from tests.support.events import exec_event
from tests.support.fuzz_events import event_list_of
from tests.support.processes import Proc, free_port
from tests.support.services import kafka_bootstrap, topic_records

pytestmark = pytest.mark.integration

WORKERS = 3
PARTITIONS = 3


def children_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_workers_share_the_port_and_every_event_lands_once(tmp_path: Path) -> None:
    bootstrap = kafka_bootstrap()
    topic = f"workers-{uuid.uuid4().hex[:8]}"
    port = free_port()
    ingest = Proc(["ingest", "--kafka", bootstrap, "--topic", topic, "--port", str(port), "--partitions",
                   str(PARTITIONS), "--workers", str(WORKERS)], tmp_path / "ingest.log")  # fmt: skip
    try:
        ingest.wait_http(f"http://127.0.0.1:{port}/readyz")
        workers = children_of(ingest.popen.pid)
        assert len(workers) == WORKERS, ingest.output()
        texts: list[bytes] = []
        for batch in range(12):  # a connection per batch, so the kernel spreads them over the workers
            items = []
            for i in range(25):
                event = exec_event() | {"auditID": f"{topic}-{batch}-{i}"}
                event["user"] = {"username": f"user-{i % 7}", "groups": ["system:authenticated"]}
                items.append(orjson.dumps(event).replace(b'"verb":', b'"verb": '))  # not as orjson writes it
            texts += items
            reply = httpx.post(f"http://127.0.0.1:{port}/audit/webhook", content=event_list_of(items), timeout=30)
            assert reply.status_code == 200 and reply.json()["accepted"] == len(items), reply.text
        records = topic_records(bootstrap, topic, expect_at_least=len(texts))
        assert sorted(r.value for r in records) == sorted(texts)  # each once, byte for byte
        for record in records:
            assert record.key == orjson.loads(record.value)["user"]["username"].encode()
            assert record.partition == partition_index(record.key, PARTITIONS)
    finally:
        status = ingest.stop()
    assert status == 0, ingest.output()
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie left for a reaper that never comes does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_die_with_a_parent_killed_with_sigkill(tmp_path: Path) -> None:
    port = free_port()
    ingest = Proc(["ingest", "--kafka", kafka_bootstrap(), "--topic", f"workers-{uuid.uuid4().hex[:8]}", "--port",
                   str(port), "--workers", "2"], tmp_path / "ingest.log")  # fmt: skip
    workers: list[int] = []
    try:
        ingest.wait_http(f"http://127.0.0.1:{port}/readyz")
        workers = children_of(ingest.popen.pid)
        assert len(workers) == 2, ingest.output()
        ingest.kill9()
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)], ingest.output()
        # nothing listens on the port any more: a new instance has it alone. (Asked by connecting, not by binding
        # it: the port is from the ephemeral range, and any process's outgoing connection may hold it meanwhile.)
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        for pid in workers:  # without the fix: orphans, stopped here rather than left serving
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
