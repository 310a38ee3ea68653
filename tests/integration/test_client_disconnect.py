"""A client that disconnects in the middle of its webhook body, against a real `serve` process: one INFO line
naming the request, the client and the bytes read; no ERROR, no traceback; the server keeps serving."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.events import batch_of_400, event_list
from tests.support.processes import Proc, free_port

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token-value"


def half_a_body(port: int, body: bytes, *, sent: int) -> None:
    """POST with the whole body's Content-Length, send `sent` bytes of it, then close the connection."""
    head = (
        f"POST /audit/webhook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body[:sent])
        time.sleep(0.3)  # the server has read what was sent and waits for the rest


def test_a_client_gone_mid_body_is_one_info_line(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    port = free_port()
    log = tmp_path / "serve.log"
    proc = Proc(["serve", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'a.db'}", "--token-file", str(token)],
                log)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{base}/readyz")
        body = event_list(batch_of_400())
        half_a_body(port, body, sent=len(body) // 2)
        deadline = time.monotonic() + 10
        while "INFO" not in proc.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        ok = httpx.post(f"{base}/audit/webhook", content=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert ok.status_code == 200 and ok.json()["accepted"] == 400
    finally:
        proc.stop()
    output = proc.output()
    assert "Traceback" not in output and "ERROR" not in output, output
    gone = [line for line in output.splitlines() if "disconnected" in line]
    assert len(gone) == 1, output
    assert re.search(
        r" INFO auditwatch\.webhook: POST /audit/webhook from 127\.0\.0\.1: client disconnected after \d+ bytes "
        r"of the body$",
        gone[0],
    ), gone[0]
    read = int(gone[0].rsplit(" after ", 1)[1].split()[0])
    assert 0 < read <= len(body) // 2
