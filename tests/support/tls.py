"""Real X.509 material for tests, made with the openssl CLI: a CA, a server cert for 127.0.0.1, clients."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # signed by another CA
    rogue_key: Path


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(d: Path, name: str) -> None:
    _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
         "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d)  # fmt: skip


def _leaf(d: Path, name: str, ca: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    _run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
         "-out", f"{name}.csr", cwd=d)  # fmt: skip
    _run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
         "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=d)  # fmt: skip


def make_pki(d: Path) -> Pki:
    _ca(d, "audit-ca")
    _ca(d, "rogue-ca")
    _leaf(d, "server", "audit-ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _leaf(d, "kube-apiserver", "audit-ca", "extendedKeyUsage=clientAuth\n")
    _leaf(d, "rogue", "rogue-ca", "extendedKeyUsage=clientAuth\n")
    return Pki(
        ca=d / "audit-ca.crt", server_cert=d / "server.crt", server_key=d / "server.key",
        client_cert=d / "kube-apiserver.crt", client_key=d / "kube-apiserver.key",
        rogue_cert=d / "rogue.crt", rogue_key=d / "rogue.key",
    )  # fmt: skip


def another_client(pki: Pki, name: str) -> tuple[Path, Path]:
    """One more client certificate (and its key) from the PKI's CA, with common name `name`."""
    d = pki.ca.parent
    _leaf(d, name, "audit-ca", "extendedKeyUsage=clientAuth\n")
    return d / f"{name}.crt", d / f"{name}.key"


def server_certificate(d: Path, name: str, san: str) -> tuple[Path, Path, Path]:
    """A CA of its own and a server certificate it signs for `san` (e.g. DNS:svc.ns.svc): CA, cert, key."""
    _ca(d, f"{name}-ca")
    _leaf(d, name, f"{name}-ca", f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    return d / f"{name}-ca.crt", d / f"{name}.crt", d / f"{name}.key"
