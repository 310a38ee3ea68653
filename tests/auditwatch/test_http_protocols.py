"""What the HTTP parser refuses before the app runs (malformed, Content-Length with Transfer-Encoding, a request
line or headers over 64 KiB) is a problem-details 400 or 431 too, from a real server over a raw socket: `auditwatch
api` (serve and ingest run the same `run_http`), detect's metrics listener, and a server with auditwatch's protocol
options and an app that records what reaches it, each on httptools and on h11 (the protocol a --write-client-cn
listener uses)."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditwatch.http_protocols import MALFORMED, MAX_HEAD_BYTES, TOO_LARGE
from auditwatch.metrics import Metrics
from auditwatch.metrics_listener import MetricsListener
from auditwatch.server import protocol_options
from auditwatch.settings import Settings
from tests.support.processes import Proc, free_port, served_in_thread

BIG = b"v" * (MAX_HEAD_BYTES + 4096)
REFUSED = {
    "not HTTP": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    "a header without a colon": (b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n", 400),
    "a request line too long": (b"GET /" + BIG + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", 431),
    "a header too long": (b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Big: " + BIG + b"\r\n\r\n", 431),
    "too many headers": (
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n" + (b"X-H: " + b"h" * 1000 + b"\r\n") * 70 + b"\r\n",
        431,
    ),
    "headers that never end": (b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Big: " + BIG, 431),
}
CONTENT_LENGTH_AND_CHUNKED = (
    b"POST /audit/webhook HTTP/1.1\r\nHost: localhost\r\n"
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
)


def read_until_closed(port: int, *pieces: bytes) -> bytes:
    """Send the pieces raw (one `sendall` each, 5 ms apart) and read until the server closes (else a timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(0.005)
            conn.sendall(piece)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` raw in one `sendall` and read the answer until the server closes: status, headers, body."""
    head, _, body = read_until_closed(port, request).partition(b"\r\n\r\n")
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
        port, f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".encode() + head + b"\r\n"
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
    for request, status in REFUSED.values():
        assert_refused(port, request, status)
    assert_refused(port, CONTENT_LENGTH_AND_CHUNKED, 400)
    # on h11 the app's 401: this listener wants a client certificate (whose TLS handshake comes first)
    a_large_head_within_the_bound_reaches_the_app(port, "/metrics", 401 if protocol == "h11" else 200)


Recorder = tuple[int, list[tuple[str, str, bytes]]]


@pytest.fixture(params=["httptools", "h11"])
def recorder(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    """A real server with auditwatch's protocol options (on h11 ClientCertProtocol, as with --write-client-cn; no
    TLS here, so no certificate) whose app records each request it runs, (method, path, body), and echoes the body."""
    runs: list[tuple[str, str, bytes]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        runs.append((scope["method"], scope["path"], body))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    cns = ["kube-apiserver"] if request.param == "h11" else []
    with served_in_thread(app, lifespan="off", **protocol_options(Settings(write_client_cns=cns))) as port:
        yield port, runs


def head_of(size: int, method: bytes = b"GET") -> bytes:
    """A request with no body whose head measures `size` bytes as the protocols count it: target, and each header's
    name and value plus 4 (": " and CRLF)."""
    target, fixed = b"/head", [(b"Host", b"x"), (b"Connection", b"close")]
    filler = size - len(target) - sum(len(name) + len(value) + 4 for name, value in fixed) - len(b"X-Fill") - 4
    headers = fixed + [(b"X-Fill", b"f" * filler)]
    return b"%s %s HTTP/1.1\r\n%s\r\n" % (method, target, b"".join(b"%s: %s\r\n" % header for header in headers))


def test_a_head_over_the_bound_in_one_read_is_refused_before_the_app(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    port, runs = recorder
    assert_refused(port, head_of(70 * 1024), 431)
    assert_refused(port, head_of(MAX_HEAD_BYTES + 1), 431)
    # after HEAD, the same head and no body (a body there was an error in the server's log, on h11)
    answer = read_until_closed(port, head_of(70 * 1024, b"HEAD"))
    assert answer.startswith(b"HTTP/1.1 431 ") and answer.endswith(b"\r\n\r\n"), answer
    assert runs == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_head_within_the_bound_reaches_the_app(recorder: Recorder) -> None:
    port, runs = recorder
    assert exchange(port, head_of(MAX_HEAD_BYTES))[0] == 200
    request = head_of(60 * 1024)
    assert exchange(port, request)[0] == 200
    # in pieces: a head incomplete after a read is bounded at 64 KiB too, not at h11's default 16 KiB
    answer = read_until_closed(port, *(request[i : i + 4096] for i in range(0, len(request), 4096)))
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert runs == [("GET", "/head", b"")] * 3


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 5\r\nTransfer-Encoding: chunked",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5",
        b"Content-Length: 0\r\ntransfer-encoding: chunked",
    ],
)
def test_content_length_with_transfer_encoding_is_refused_and_the_connection_closed(
    recorder: Recorder, framing: bytes
) -> None:
    port, runs = recorder
    # neither the request nor what follows its chunked body (a second request) reaches the app; no
    # `Connection: close`, so only the refusal closes the connection (else the read times out)
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"
    assert_refused(port, b"POST /a HTTP/1.1\r\nHost: localhost\r\n" + framing + b"\r\n\r\n0\r\n\r\n" + smuggled, 400)
    # a request after one that the app answered, on the same connection, is checked as well
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"POST /first HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello")
        answer = b""
        while not answer.endswith(b"\r\n\r\nhello") and (chunk := conn.recv(65536)):  # up to the echo
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        conn.sendall(b"POST /b HTTP/1.1\r\nHost: localhost\r\n" + framing + b"\r\n\r\n0\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["detail"] == MALFORMED, answer
    assert runs == [("POST", "/first", b"hello")]


def test_a_request_framed_by_content_length_or_by_chunks_reaches_the_app(recorder: Recorder) -> None:
    port, runs = recorder
    for framing, body in [
        (b"Content-Length: 11", b"hello world"),
        (b"Transfer-Encoding: chunked", b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
    ]:
        got, _, echoed = exchange(
            port, b"POST /in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + framing + b"\r\n\r\n" + body
        )
        assert (got, echoed) == (200, b"hello world"), framing
    assert runs == [("POST", "/in", b"hello world")] * 2
