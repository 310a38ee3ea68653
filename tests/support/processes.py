"""Start auditwatch commands as real processes for integration tests (bounded waits, always cleaned up)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tests.support.cli import clean_env
from tests.support.paths import PYTHON, ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served_in_thread(app: Any, **options: Any) -> Iterator[int]:
    """`app` served by a uvicorn server of its own (uvicorn.Config `options`; not auditwatch's run_http) in a thread,
    on a loopback port of its own; that port. Stopped after."""
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn in a test", daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            thread.join(0.05)
        assert server.started, "the server did not start"
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


class Proc:
    """An `auditwatch ...` subprocess whose output goes to a log file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [PYTHON, "-m", "auditwatch.cli", *args],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=clean_env(env),
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_http(self, url: str, *, verify: ssl.SSLContext | bool = True, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.args[0]} exited {self.popen.returncode}: {self.output()}")
            try:
                if httpx.get(url, timeout=2, verify=verify).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"{url} not ready within {timeout_s}s: {self.output()}")

    def kill9(self) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout_s: float = 20.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.popen.returncode
