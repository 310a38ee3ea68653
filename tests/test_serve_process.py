"""`auditwatch serve` as a real process: what a 200 promises survives `kill -9`."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PYTHON, ROOT
from tests.test_webhook import batch_of_400, event_list

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    db = tmp_path / "serve.db"
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [PYTHON, "-m", "auditwatch.cli", "serve", "--port", str(port), "--db", f"sqlite:///{db}"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError(f"serve did not start: {log.read_text()}")
    yield proc, base, db
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def test_kill_9_right_after_200_loses_nothing(server: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    proc, base, db = server
    resp = httpx.post(f"{base}/audit/webhook?timeout=30s", content=event_list(batch_of_400()), timeout=30)
    assert resp.status_code == 200
    os.kill(proc.pid, signal.SIGKILL)  # no shutdown hook gets to run
    proc.wait(timeout=10)
    with sqlite3.connect(db) as conn:
        rules = sorted(r for (r,) in conn.execute("select rule_id from alerts"))
    assert rules == ["cluster-admin-binding", "pod-exec-attach", "privileged-container"]


def test_malformed_json_is_refused_and_the_server_stays_up(server: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    proc, base, _ = server
    resp = httpx.post(f"{base}/audit/webhook", content=b'{"items": [', timeout=10)
    assert resp.status_code == 400 and "malformed JSON" in resp.json()["error"]
    assert proc.poll() is None
    ok = httpx.post(f"{base}/audit/webhook", content=event_list(batch_of_400()[:10]), timeout=10)
    assert ok.status_code == 200
    page = httpx.get(f"{base}/api/v1/alerts?limit=1", timeout=10).json()
    assert set(page) == {"items", "next_cursor"}
    assert httpx.get(f"{base}/docs", timeout=10).status_code == 200
