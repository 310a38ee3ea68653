"""A real kube-apiserver (with etcd) for end-to-end tests, driven through `scripts/kube-e2e.sh`.

The script builds the binaries from the Go module proxy (cached outside git) and starts them on loopback
ports chosen here; auditwatch is started by the test itself (so it can be stopped and restarted), after
`pki` and before the apiserver, which then sends its audit events to it from the first request on.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.cli import clean_env
from tests.support.paths import ROOT
from tests.support.processes import free_port

SCRIPT = ROOT / "scripts" / "kube-e2e.sh"
USERS = {"admin": "e2e-admin-token", "alice": "e2e-lowpriv-token", "ci": "e2e-ci-token",
         "monitoring": "e2e-monitoring-token"}  # fmt: skip
KUBECONFIGS = {"admin": "admin.kubeconfig", "alice": "lowpriv.kubeconfig", "ci": "ci.kubeconfig"}
AuditKey = tuple[str, str, str]  # auditID, stage, stageTimestamp: what a receipt records


def script_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of `scripts/kube-e2e.sh`: no AUDITWATCH_* settings, but the binaries' cache if set."""
    env = clean_env(extra)
    if os.environ.get("AUDITWATCH_CACHE"):
        env["AUDITWATCH_CACHE"] = os.environ["AUDITWATCH_CACHE"]
    return env


def kube_bin_dir() -> Path:
    out = subprocess.run([str(SCRIPT), "bindir"], capture_output=True, text=True, env=script_env({}), check=True)
    return Path(out.stdout.strip())


def require_kube_binaries() -> Path:
    """The cached binaries, or skip (locally) / fail (in CI, where `scripts/test.sh` builds them first)."""
    bin_dir = kube_bin_dir()
    missing = [b for b in ("kube-apiserver", "kubectl", "etcd") if not (bin_dir / b).is_file()]
    if missing:
        message = f"{', '.join(missing)} not built in {bin_dir}: run `scripts/kube-e2e.sh build` (about 5 min cold)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return bin_dir


class KubeCluster:
    """etcd + kube-apiserver in `run_dir`, auditing to the log file and to auditwatch on `auditwatch_port`."""

    def __init__(self, run_dir: Path, bin_dir: Path) -> None:
        self.run = run_dir
        self.bin = bin_dir
        self.apiserver_port = free_port()
        self.auditwatch_port = free_port()
        self.env = script_env({
            "KUBE_E2E_RUN": str(run_dir),
            "KUBE_E2E_NO_AUDITWATCH": "1",
            "APISERVER_PORT": str(self.apiserver_port),
            "AUDITWATCH_PORT": str(self.auditwatch_port),
            "ETCD_CLIENT_PORT": str(free_port()),
            "ETCD_PEER_PORT": str(free_port()),
        })  # fmt: skip
        self.kubectl_env = clean_env({"KUBECACHEDIR": str(run_dir / "kube-cache"), "HOME": str(run_dir)})
        self.server = f"https://127.0.0.1:{self.apiserver_port}"

    # --- lifecycle (the script does the work; output goes to the run dir's logs) ---
    def _script(self, command: str, timeout_s: float = 180) -> None:
        result = subprocess.run(
            [str(SCRIPT), command], env=self.env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if result.returncode != 0:
            raise AssertionError(f"kube-e2e.sh {command} failed:\n{result.stderr[-4000:]}\n{self.logs()}")

    def pki(self) -> None:
        self._script("pki")

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop", timeout_s=60)

    def logs(self) -> str:
        parts = []
        for name in ("kube-apiserver.log", "etcd.log"):
            path = self.run / name
            if path.exists():
                parts.append(f"--- {name}:\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    # --- files the script wrote ---
    @property
    def pki_dir(self) -> Path:
        return self.run / "pki"

    @property
    def audit_log(self) -> Path:
        return self.run / "audit.log"

    def tls_flags(self) -> list[str]:
        """auditwatch's listener flags: its server certificate, and the CA of the apiserver's client cert."""
        p = self.pki_dir
        return ["--tls-cert", str(p / "auditwatch.crt"), "--tls-key", str(p / "auditwatch.key"),
                "--tls-client-ca", str(p / "aw-client-ca.crt")]  # fmt: skip

    def auditwatch_client(self) -> httpx.Client:
        """A REST client for auditwatch's own HTTPS listener, with the client certificate it requires."""
        p = self.pki_dir
        context = ssl.create_default_context(cafile=p / "aw-server-ca.crt")
        context.load_cert_chain(p / "auditwatch-client.crt", p / "auditwatch-client.key")
        return httpx.Client(base_url=f"https://127.0.0.1:{self.auditwatch_port}", verify=context, timeout=10)

    # --- clients of the apiserver ---
    def kubectl(self, user: str, *args: str, stdin: str | None = None, check: bool = True) -> str:
        cmd = [
            str(self.bin / "kubectl"),
            f"--kubeconfig={self.run / KUBECONFIGS[user]}",
            "--request-timeout=20s",
            *args,
        ]
        result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=self.kubectl_env, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} as {user} failed: {result.stderr}")
        return result.stdout + result.stderr

    def apply(self, user: str, manifest: dict[str, Any]) -> str:
        return self.kubectl(user, "apply", "-f", "-", stdin=orjson.dumps(manifest).decode())

    def client(self, token: str | None, user_agent: str = "e2e-raw-client/1.0") -> httpx.Client:
        """Raw HTTPS as a given bearer token (None: anonymous), keeping its connection open."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers["User-Agent"] = user_agent
        context = ssl.create_default_context(cafile=self.pki_dir / "ca.crt")
        return httpx.Client(base_url=self.server, headers=headers, verify=context, timeout=20)

    def request(self, method: str, path: str, *, token: str | None = None, body: Any = None) -> httpx.Response:
        with self.client(token) as client:
            return client.request(method, path, json=body)

    def audit_keys(self) -> set[AuditKey]:
        """Every event the log backend wrote so far (the apiserver writes the same events to the webhook)."""
        keys: set[AuditKey] = set()
        if not self.audit_log.exists():
            return keys
        for line in self.audit_log.read_bytes().splitlines():
            if line.strip():
                event = orjson.loads(line)
                keys.add((event["auditID"], event["stage"], event.get("stageTimestamp") or ""))
        return keys

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/readyz", token=USERS["admin"]).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"kube-apiserver not ready after {timeout_s}s\n{self.logs()}")
