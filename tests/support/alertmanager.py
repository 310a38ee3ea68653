"""A private Prometheus Alertmanager (Debian's prometheus-alertmanager, installed by scripts/services.sh) on a free
loopback port, clustering off, storage in a temp directory; its receiver is a webhook into the test."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import free_port


def alertmanager_binary() -> str:
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found is None:
        message = (
            "Alertmanager is not installed: run `scripts/services.sh up` (apt-get install prometheus-alertmanager)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


class PrivateAlertmanager:
    """One Alertmanager that groups alerts by `alertname` and sends each group to `webhook_url` at once."""

    def __init__(self, workdir: Path, webhook_url: str) -> None:
        self.binary = alertmanager_binary()
        self.dir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "alertmanager.yml"
        self.config.write_text(
            "route:\n  receiver: test\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n"
            "  repeat_interval: 1h\n"
            f"receivers:\n  - name: test\n    webhook_configs:\n      - url: {webhook_url}/hook\n        send_resolved: true\n"
        )

    def start(self, timeout_s: float = 30.0) -> None:
        args = [
            self.binary, f"--config.file={self.config}", f"--storage.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", "--log.level=warn",
        ]  # fmt: skip
        with (self.dir / "alertmanager.log").open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"Alertmanager exited: {(self.dir / 'alertmanager.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("Alertmanager did not become ready in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts it holds and that are active (resolved ones are not listed)."""
        resp = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        resp.raise_for_status()
        alerts: list[dict[str, Any]] = resp.json()
        return alerts
