"""Webhook authentication with real certificates: TLS, client certificates (kubeconfig style), tokens."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.events import event_list, exec_event
from tests.support.processes import Proc, free_port
from tests.support.tls import Pki, make_pki

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def kubeconfig(path: Path, server: str, pki: Pki, *, cert: Path, key: Path) -> Path:
    """What kube-apiserver's --audit-webhook-config-file holds for a client-certificate webhook."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "auditwatch",
        "clusters": [{"name": "auditwatch", "cluster": {"server": server, "certificate-authority": str(pki.ca)}}],
        "users": [{"name": "kube-apiserver", "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "auditwatch", "context": {"cluster": "auditwatch", "user": "kube-apiserver"}}],
    }))  # fmt: skip
    return path


def client_from_kubeconfig(path: Path) -> tuple[httpx.Client, str]:
    """The apiserver's side: TLS to the server's CA, presenting the kubeconfig's client certificate."""
    config = yaml.safe_load(path.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    ctx = ssl.create_default_context(cafile=cluster["certificate-authority"])
    ctx.load_cert_chain(user["client-certificate"], user["client-key"])
    return httpx.Client(verify=ctx, timeout=10), cluster["server"]


@pytest.fixture
def mtls_server(tmp_path: Path, pki: Pki) -> Iterator[str]:
    port = free_port()
    proc = Proc(
        ["serve", "--host", "127.0.0.1", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'a.db'}",
         "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), "--tls-client-ca", str(pki.ca)],
        tmp_path / "serve.log",
    )  # fmt: skip
    base = f"https://127.0.0.1:{port}"
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    try:
        proc.wait_http(f"{base}/healthz", verify=ctx)
        yield base
    finally:
        proc.kill9()


def test_kubeconfig_client_certificate_is_accepted(tmp_path: Path, pki: Pki, mtls_server: str) -> None:
    path = kubeconfig(
        tmp_path / "kc.yaml", f"{mtls_server}/audit/webhook", pki, cert=pki.client_cert, key=pki.client_key
    )
    client, server = client_from_kubeconfig(path)
    with client:
        resp = client.post(f"{server}?timeout=30s", content=event_list([exec_event()]))
    assert resp.status_code == 200 and resp.json()["alerts"] >= 1


def test_no_or_wrong_client_certificate_is_refused(tmp_path: Path, pki: Pki, mtls_server: str) -> None:
    no_cert = ssl.create_default_context(cafile=str(pki.ca))
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.post(f"{mtls_server}/audit/webhook", content=event_list([exec_event()]), verify=no_cert, timeout=10)
    path = kubeconfig(
        tmp_path / "rogue.yaml", f"{mtls_server}/audit/webhook", pki, cert=pki.rogue_cert, key=pki.rogue_key
    )
    client, server = client_from_kubeconfig(path)
    with client, pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        client.post(server, content=event_list([exec_event()]))


def test_plain_http_client_cannot_talk_to_the_tls_port(mtls_server: str) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.post(mtls_server.replace("https", "http") + "/audit/webhook", content=b"{}", timeout=5)


def test_token_over_tls_on_a_public_bind_requires_the_token(tmp_path: Path, pki: Pki) -> None:
    port = free_port()
    token = tmp_path / "token"
    token.write_text("t0ken-from-kubeconfig\n")
    proc = Proc(
        ["serve", "--host", "0.0.0.0", "--port", str(port), "--db", f"sqlite:///{tmp_path / 'b.db'}",
         "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), "--token-file", str(token)],
        tmp_path / "serve.log",
    )  # fmt: skip
    base = f"https://127.0.0.1:{port}"
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    try:
        proc.wait_http(f"{base}/healthz", verify=ctx)
        body = event_list([exec_event()])
        assert httpx.post(f"{base}/audit/webhook", content=body, verify=ctx).status_code == 401
        bad = {"Authorization": "Bearer guess"}
        assert httpx.post(f"{base}/audit/webhook", content=body, verify=ctx, headers=bad).status_code == 401
        good = {"Authorization": "Bearer t0ken-from-kubeconfig"}
        assert httpx.post(f"{base}/audit/webhook", content=body, verify=ctx, headers=good).status_code == 200
    finally:
        proc.kill9()
