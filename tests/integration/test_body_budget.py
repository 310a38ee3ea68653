"""The webhook's body budget (--body-budget-bytes) in a real `auditwatch serve`: while the bodies in flight fill it,
a request that would exceed it gets 503 with Retry-After, as problem details, before any of its body is sent;
smaller ones that fit and the held ones succeed, and peak RSS stays bounded. Waits are bounded."""

from __future__ import annotations

import copy
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.events import another_like, event_list, exec_event
from tests.support.processes import Proc, free_port

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
MAX_BODY = 8 * MIB
BUDGET = 16 * MIB  # two bodies of up to 8 MiB at once


def quiet_event() -> dict[str, object]:
    """A routine read that no built-in rule alerts on, so a big batch costs parsing, not alert rows."""
    event = copy.deepcopy(exec_event())
    event["verb"] = "get"
    event["objectRef"] = {"resource": "configmaps", "namespace": "default", "name": "settings", "apiVersion": "v1"}
    event["requestURI"] = "/api/v1/namespaces/default/configmaps/settings"
    return event


def big_body(size: int) -> bytes:
    """A valid EventList of about `size` bytes (not over it)."""
    one = quiet_event()
    count = size // (len(orjson.dumps(one)) + 40)
    body = event_list([another_like(one, n) for n in range(count)])
    assert size // 2 < len(body) <= size
    return body


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[Proc, int]]:
    port = free_port()
    args = ["serve", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'serve.db'}",
            "--max-body-bytes", str(MAX_BODY), "--body-budget-bytes", str(BUDGET)]  # fmt: skip
    proc = Proc(args, tmp_path / "serve.log")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/readyz")
        yield proc, port
    finally:
        proc.stop()


def start_post(port: int, body: bytes, sent: int) -> socket.socket:
    """A webhook POST declaring all of `body` with only its first `sent` bytes sent: it holds its share."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = "POST /audit/webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[:sent])
    return sock


def response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and raw head+body of the one response on `sock` (read until the server closes or 30 s)."""
    data = b""
    sock.settimeout(30)
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]), data


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_bodies_beyond_the_budget_get_503_before_being_read(serve: tuple[Proc, int]) -> None:
    proc, port = serve
    url = f"http://127.0.0.1:{port}/audit/webhook"
    body = big_body(MAX_BODY - MIB)
    small = event_list([quiet_event()])
    assert httpx.post(url, content=small, timeout=30).status_code == 200
    before = peak_rss_mib(proc.popen.pid)
    held = [start_post(port, body, 1000) for _ in range(2)]  # 2 x 7 MiB of the 16 MiB budget
    try:
        time.sleep(0.5)  # both heads handled: their shares taken
        # a third body does not fit: refused from its head alone, none of its body sent
        refused = start_post(port, body, 0)
        status, raw = response(refused)
        refused.close()
        assert status == 503, raw[:500]
        head, _, problem = raw.partition(b"\r\n\r\n")
        assert b"retry-after: 2" in head.lower() and b"application/problem+json" in head.lower()
        assert orjson.loads(problem)["status"] == 503
        # many more at once, whole bodies: every one refused, none read or parsed
        with ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(lambda _: httpx.post(url, content=body, timeout=60).status_code, range(6)))
        assert codes == [503] * 6
        # a small batch still fits beside the held ones
        assert httpx.post(url, content=small, timeout=30).status_code == 200
        for sock in held:
            sock.sendall(body[1000:])
        assert [response(sock)[0] for sock in held] == [200, 200]
    finally:
        for sock in held:
            sock.close()
    # their shares are back: the refused body is now accepted
    resp = httpx.post(url, content=body, timeout=60)
    assert resp.status_code == 200 and resp.json()["accepted"] > 1000, resp.text
    # two 7 MiB bodies at most were held at once (a parsed body holds a few times its size); the eight tried
    # here unbounded would add several hundred MiB
    growth = peak_rss_mib(proc.popen.pid) - before
    assert growth < 150, f"peak RSS grew by {growth:.0f} MiB"
