"""Start auditwatch commands as real processes for integration tests (bounded waits, always cleaned up)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx

from tests.support.cli import clean_env
from tests.support.paths import PYTHON, ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
