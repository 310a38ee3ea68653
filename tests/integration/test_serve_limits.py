"""`auditwatch serve` as a real process against hostile bodies: junk amplification and a slow client."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from detectors.events import MAX_KEPT_REJECTED
from tests.support.events import event_list, exec_event
from tests.support.processes import Proc, free_port

pytestmark = pytest.mark.integration

READ_TIMEOUT_S = 2


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Proc, str, Path, int]]:
    db = tmp_path / "serve.db"
    port = free_port()
    args = ["serve", "--port", str(port), "--db", f"sqlite:///{db}", "--body-read-timeout", str(READ_TIMEOUT_S)]
    proc = Proc(args, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{base}/readyz")
        yield proc, base, db, port
    finally:
        proc.kill9()


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_two_million_junk_items_cost_a_counter_not_memory_or_rows(server: tuple[Proc, str, Path, int]) -> None:
    proc, base, db, _ = server
    assert httpx.post(f"{base}/audit/webhook", content=event_list([exec_event()]), timeout=30).status_code == 200
    before = peak_rss_kib(proc.popen.pid)
    body = b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[' + b",".join([b"0"] * 2_000_000) + b"]}"
    assert len(body) > 4_000_000
    started = time.monotonic()
    resp = httpx.post(f"{base}/audit/webhook", content=body, timeout=60)
    took = time.monotonic() - started
    assert resp.status_code == 200, resp.text
    reply = resp.json()
    assert (reply["accepted"], reply["rejected"], reply["quarantined"]) == (0, 2_000_000, MAX_KEPT_REJECTED)
    assert len(reply["rejections"]) == 20
    assert took < 15, f"took {took:.1f} s"  # about 1-2 s on a quiet machine
    growth_mib = (peak_rss_kib(proc.popen.pid) - before) / 1024
    assert growth_mib < 150, f"peak RSS grew by {growth_mib:.0f} MiB"
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from quarantine").fetchone() == (MAX_KEPT_REJECTED,)
    assert proc.popen.poll() is None


def answer_is_complete(answer: bytes) -> bool:
    head, separator, body = answer.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return True


def test_a_slow_client_gets_408_and_the_server_goes_on(server: tuple[Proc, str, Path, int]) -> None:
    proc, base, _, port = server
    body = event_list([exec_event()])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /audit/webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        started = time.monotonic()
        answer = b""
        sock.settimeout(0.5)
        for byte in body[:60]:  # a few bytes a second, far less than the body
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break  # the server closed the connection after answering
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer:
                break
        took = time.monotonic() - started
        sock.settimeout(5)
        while not answer_is_complete(answer):  # headers and body may come in separate segments
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), answer
    assert f"request body not received within {READ_TIMEOUT_S} s".encode() in rest
    assert READ_TIMEOUT_S - 0.5 <= took < READ_TIMEOUT_S + 10
    assert httpx.post(f"{base}/audit/webhook", content=body, timeout=30).status_code == 200
    assert proc.popen.poll() is None
