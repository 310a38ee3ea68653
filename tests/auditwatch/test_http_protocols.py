"""What the HTTP parser refuses before the app runs (malformed, Content-Length with chunked, a request line or
headers over 64 KiB) is a problem-details 400 or 431 too, from a real server over a raw socket: `auditwatch api`
(serve and ingest run the same `run_http`), and detect's metrics listener on httptools and on h11 (the protocol
a --write-client-cn listener uses)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest

from auditwatch.http_protocols import MALFORMED, MAX_HEAD_BYTES, TOO_LARGE
from auditwatch.metrics import Metrics
from auditwatch.metrics_listener import MetricsListener
from auditwatch.settings import Settings
from tests.support.processes import Proc, free_port

BIG = b"v" * (MAX_HEAD_BYTES + 4096)
REFUSED = {
    "not HTTP": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    "a header without a colon": (b"GET /metrics HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
    "a request line too long": (b"GET /" + BIG + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431),
    "a header too long": (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + BIG + b"\r\n\r\n", 431),
    "too many headers": (
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + (b"X-H: " + b"h" * 1000 + b"\r\n") * 70 + b"\r\n",
        431,
    ),
    "headers that never end": (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + BIG, 431),
}
CONTENT_LENGTH_AND_CHUNKED = (
    b"POST /audit/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
)


def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` raw and read the answer until the server closes: status, headers, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def assert_refused(port: int, request: bytes, status: int) -> None:
    got, headers, body = exchange(port, request)
    assert got == status and headers["content-type"] == "application/problem+json", (got, headers, body[:200])
    assert headers["connection"] == "close" and int(headers["content-length"]) == len(body)
    detail = TOO_LARGE if status == 431 else MALFORMED
    assert json.loads(body) == {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
                                "detail": detail}  # fmt: skip


def a_large_head_within_the_bound_reaches_the_app(port: int, path: str, status: int) -> None:
    head = b"".join(b"X-H%d: %s\r\n" % (i, b"h" * 1000) for i in range(40))  # 40 KiB: over h11's default (16 KiB)
    got, headers, body = exchange(
        port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode() + head + b"\r\n"
    )
    assert got == status, (got, headers, body[:200])


@pytest.fixture(scope="module")
def api_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp: Path = tmp_path_factory.mktemp("api")
    port = free_port()
    proc = Proc(["api", "--host", "127.0.0.1", "--port", str(port), "--db", f"sqlite:///{tmp}/a.db"], tmp / "api.log")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/readyz")
        yield port
    finally:
        proc.stop()


@pytest.mark.parametrize("case", REFUSED)
def test_the_api_process_refuses_as_a_problem(api_port: int, case: str) -> None:
    assert_refused(api_port, *REFUSED[case])


def test_the_api_process_refuses_content_length_with_chunked_and_takes_a_large_head(api_port: int) -> None:
    assert_refused(api_port, CONTENT_LENGTH_AND_CHUNKED, 400)
    a_large_head_within_the_bound_reaches_the_app(api_port, "/healthz", 200)
    # a refused request does not stop the server, and keep-alive still works across requests
    with httpx.Client(base_url=f"http://127.0.0.1:{api_port}") as client:
        assert [client.get("/healthz").status_code for _ in range(3)] == [200, 200, 200]


@pytest.fixture(params=["httptools", "h11"])
def listener_port(request: pytest.FixtureRequest) -> Iterator[tuple[int, str]]:
    """detect's metrics listener; on h11 as when access depends on a client certificate's common name."""
    port = free_port()
    cns = ["kube-apiserver"] if request.param == "h11" else []
    listener = MetricsListener(Settings(host="127.0.0.1", port=port, write_client_cns=cns), Metrics.for_api())
    listener.start()
    try:
        for _ in range(200):
            if listener.server.started:
                break
            listener.thread.join(0.05)
        yield port, request.param
    finally:
        listener.stop()


def test_the_metrics_listener_refuses_as_a_problem(listener_port: tuple[int, str]) -> None:
    port, protocol = listener_port
    for case, (request, status) in REFUSED.items():
        if protocol == "h11" and status == 431 and case != "headers that never end":
            # h11 bounds a head still incomplete after a read; one that ends within the read goes through (to
            # the app's 401 here: this listener wants a client certificate, whose TLS handshake comes first)
            assert exchange(port, request)[0] == 401, case
        else:
            assert_refused(port, request, status)
    a_large_head_within_the_bound_reaches_the_app(port, "/metrics", 401 if protocol == "h11" else 200)
