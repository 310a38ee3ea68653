"""Read-only and read-write access through a real TLS listener: client certificates by common name, and the
read-only token, as `auditwatch serve` enforces them (uvicorn hands the verified certificate's subject on)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.events import event_list, exec_event
from tests.support.problems import problem_detail
from tests.support.processes import Proc, free_port
from tests.support.tls import Pki, another_client, make_pki

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def context(pki: Pki, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


@pytest.fixture
def server(tmp_path: Path, pki: Pki) -> Iterator[str]:
    """serve on a public bind: client certificates required, kube-apiserver's read-write, any other read-only;
    plus a read-write and a read-only token."""
    port = free_port()
    (tmp_path / "rw").write_text("rw-t0ken-4c1a9e\n")
    (tmp_path / "ro").write_text("ro-t0ken-7b2d5f\n")
    proc = Proc(
        ["serve", "--host", "0.0.0.0", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'a.db'}",
         "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), "--tls-client-ca", str(pki.ca),
         "--write-client-cn", "kube-apiserver", "--token-file", str(tmp_path / "rw"),
         "--read-token-file", str(tmp_path / "ro")],
        tmp_path / "serve.log",
    )  # fmt: skip
    base = f"https://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{base}/healthz", verify=context(pki, pki.client_cert, pki.client_key))
        yield base
    finally:
        proc.kill9()
        assert "t0ken" not in proc.output()


def test_common_names_and_tokens_decide_the_level(server: str, pki: Pki) -> None:
    apiserver = context(pki, pki.client_cert, pki.client_key)  # CN=kube-apiserver
    analyst = context(pki, *another_client(pki, "analyst"))
    rw, ro = {"Authorization": "Bearer rw-t0ken-4c1a9e"}, {"Authorization": "Bearer ro-t0ken-7b2d5f"}
    body = event_list([exec_event()])
    with httpx.Client(verify=apiserver, timeout=10) as client:
        assert client.post(f"{server}/audit/webhook", content=body).status_code == 401  # no token
        assert client.post(f"{server}/audit/webhook", content=body, headers=ro).status_code == 403
        assert client.post(f"{server}/audit/webhook", content=body, headers=rw).status_code == 200
        alert_id = client.get(f"{server}/api/v1/alerts", headers=ro).json()["items"][0]["id"]
        ack = client.patch(f"{server}/api/v1/alerts/{alert_id}", json={"status": "acknowledged"}, headers=rw)
        assert ack.status_code == 200
    with httpx.Client(verify=analyst, timeout=10) as client:
        assert client.get(f"{server}/api/v1/alerts/{alert_id}", headers=rw).json()["status"] == "acknowledged"
        denied = client.patch(f"{server}/api/v1/alerts/{alert_id}", json={"status": "resolved"}, headers=rw)
        assert "read-only" in problem_detail(denied, 403)
        assert client.post(f"{server}/audit/webhook", content=body, headers=rw).status_code == 403
        assert client.get(f"{server}/api/v1/alerts", headers={"Authorization": "Bearer nope"}).status_code == 401
