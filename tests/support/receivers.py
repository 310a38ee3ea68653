"""Real local HTTP receivers for notification tests, and the checks the real receivers would make.

`Receiver` is a small HTTP server on 127.0.0.1 that records every request; it can be stopped and started
again on the same port (a sink that goes down and comes back). `falcosidekick_problems` checks a Falco
alert as falcosidekick's input does (types.FalcoPayload, Check()).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from tests.support.processes import free_port

# falcosidekick types/priority.go: the priorities it knows (case-insensitive; "info" is Informational too)
FALCO_PRIORITIES = {"emergency", "alert", "critical", "error", "warning", "notice", "informational", "info", "debug"}


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    """Records every request; answers `status` (200 by default) with `answer`."""

    def __init__(self, *, status: int = 200, answer: bytes = b"ok") -> None:
        self.port = free_port()
        self.status = status
        self.answer = answer
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with owner._lock:
                    owner.received.append(Received(self.path, headers, body))
                self.send_response(owner.status)
                self.send_header("Content-Length", str(len(owner.answer)))
                self.end_headers()
                self.wfile.write(owner.answer)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (requests in flight are answered first)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=10)
        self._server = None

    def requests(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait_for(self, what: str, check: Callable[[list[Received]], bool], timeout_s: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.requests()
            if check(got):
                return got
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; received {len(self.requests())}")


def verify_signature(request: Received, secret: bytes, *, max_skew_s: float = 300) -> bool:
    """What a receiver of auditwatch's signed webhook does: recompute the HMAC of `TIMESTAMP.BODY` and compare
    in constant time, and refuse an old timestamp (a replay)."""
    timestamp = request.headers.get("x-auditwatch-timestamp", "")
    given = request.headers.get("x-auditwatch-signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > max_skew_s:
        return False
    expected = "sha256=" + hmac.new(secret, timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given, expected)


def falcosidekick_problems(event: Any) -> list[str]:
    """Why falcosidekick's input would refuse this Falco alert, field by field (empty: it takes it)."""
    if not isinstance(event, dict):
        return ["not a JSON object"]
    problems = []
    expected_types = {"time": str, "rule": str, "priority": str, "output": str, "output_fields": dict,
                      "source": str, "tags": list, "hostname": str}  # fmt: skip
    for name, kind in expected_types.items():
        if not isinstance(event.get(name), kind):
            problems.append(f"{name} is not a {kind.__name__}")
    if problems:
        return problems
    try:  # a Go time.Time: RFC 3339, fractional seconds allowed
        datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    except ValueError:
        problems.append(f"time {event['time']!r} is not RFC 3339")
    if event["priority"].lower() not in FALCO_PRIORITIES:
        problems.append(f"priority {event['priority']!r} is not one falcosidekick knows")
    if not event["rule"]:
        problems.append("rule is empty")
    if not event["output_fields"]:
        problems.append("output_fields is empty")
    if not all(isinstance(tag, str) for tag in event["tags"]):
        problems.append("tags are not all strings")
    return problems
