"""A private Prometheus (Debian's prometheus 2.42, installed by scripts/services.sh) on a free loopback port, with
its data in a temp directory; it scrapes the targets a test gives it every second. Also `promtool`."""

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
import yaml

from tests.support.processes import free_port


def prometheus_tool(name: str) -> str:
    """The path of `prometheus` or `promtool`; a skip (a failure in CI) when it is not installed."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed: run `scripts/services.sh install-prometheus` (Debian's prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def scrape_job(name: str, target: str, *, token_file: Path | None = None) -> dict[str, Any]:
    """A scrape job of one target (host:port), with a bearer token read from `token_file` when given."""
    job: dict[str, Any] = {"job_name": name, "static_configs": [{"targets": [target]}]}
    if token_file is not None:
        job["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
    return job


class PrivatePrometheus:
    """One Prometheus scraping `jobs` every second and evaluating `rule_files` every second."""

    def __init__(self, workdir: Path, jobs: list[dict[str, Any]], rule_files: list[Path] | None = None) -> None:
        self.binary = prometheus_tool("prometheus")
        self.dir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "prometheus.yml"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files or []],
            "scrape_configs": jobs,
        }
        self.config.write_text(yaml.safe_dump(config))

    def start(self, timeout_s: float = 60.0) -> None:
        args = [
            self.binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
        ]  # fmt: skip
        with (self.dir / "prometheus.log").open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"Prometheus exited: {self.log()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"Prometheus did not become ready in {timeout_s}s: {self.log()[-2000:]}")

    def log(self) -> str:
        return (self.dir / "prometheus.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def api(self, path: str, **params: str) -> Any:
        resp = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        resp.raise_for_status()
        body = resp.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> dict[str, float]:
        """An instant query's vector: the `job` label of each series -> its value."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return {item["metric"].get("job", ""): float(item["value"][1]) for item in data["result"]}

    def wait_for(self, expr: str, expected: dict[str, float], timeout_s: float = 60.0) -> None:
        """Until the query gives exactly `expected` (job -> value); an AssertionError with the last answer if not."""
        deadline = time.monotonic() + timeout_s
        got: dict[str, float] = {}
        while time.monotonic() < deadline:
            got = self.query(expr)
            if got == expected:
                return
            time.sleep(0.5)
        targets = self.api("targets")["activeTargets"]
        problems = [(t["labels"]["job"], t["health"], t["lastError"]) for t in targets]
        raise AssertionError(f"{expr}: {got}, not {expected}, after {timeout_s}s; targets: {problems}")
