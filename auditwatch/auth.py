"""Who may do what over HTTP: read-only or read-write access, by bearer token and by client certificate.

Two gates, each optional:

- bearer tokens: `--token-file` (read-write; what the apiserver's webhook kubeconfig carries) and
  `--read-token-file` (read-only). When one is set, every request but the probes must carry one of them.
- client certificates: `--tls-client-ca` makes the TLS handshake refuse clients without a certificate
  from that CA. Every verified certificate is read-write, unless `--write-client-cn` lists the common
  names that are: then a certificate whose common names are all listed is read-write, any other verified
  certificate read-only.

A request gets the lower of the levels its configured gates give (no gate at all: read-write, as on a
loopback listener). Read-only allows GET, HEAD and OPTIONS; every other method (the webhook's POST, triage's
PATCH, exceptions' POST and DELETE) needs read-write: 401 without access, 403 with read-only access.
Tokens are compared in constant time, each against both, and never logged or echoed.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from fastapi import FastAPI, Request, Response

from api.problems import problem_response
from auditwatch.http_protocols import ProblemH11Protocol
from auditwatch.settings import Settings

OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # probes stay unauthenticated
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Access(IntEnum):
    NONE = 0
    READ = 1
    WRITE = 2


@dataclass(frozen=True)
class AccessPolicy:
    """The configured gates. `write_client_cns` None: every verified client certificate is read-write."""

    write_token: bytes | None = None
    read_token: bytes | None = None
    write_client_cns: frozenset[str] | None = None

    @property
    def checks_tokens(self) -> bool:
        return self.write_token is not None or self.read_token is not None

    @property
    def enabled(self) -> bool:
        return self.checks_tokens or self.write_client_cns is not None


def access_policy(settings: Settings) -> AccessPolicy:
    def secret(value: Any) -> bytes | None:
        return None if value is None else f"Bearer {value.get_secret_value()}".encode()

    cns = frozenset(settings.write_client_cns) if settings.write_client_cns else None
    return AccessPolicy(secret(settings.api_token), secret(settings.api_read_token), cns)


def token_access(policy: AccessPolicy, authorization: str) -> Access:
    scheme, space, token = authorization.partition(" ")
    # the scheme's case does not matter (RFC 9110 11.1; the apiserver takes `bearer` too), the token's does
    given = b"Bearer " + token.encode() if space and scheme.lower() == "bearer" else authorization.encode()
    # both comparisons always run, in constant time: timing says neither which token nor how much matched
    write = policy.write_token is not None and hmac.compare_digest(given, policy.write_token)
    read = policy.read_token is not None and hmac.compare_digest(given, policy.read_token)
    return Access.WRITE if write else Access.READ if read else Access.NONE


def certificate_access(policy: AccessPolicy, client_cert_name: str | None) -> Access:
    """The level a verified client certificate (its RFC 4514 subject, or None without one) gives."""
    if policy.write_client_cns is None:
        return Access.WRITE
    if client_cert_name is None:
        return Access.NONE
    names = common_names(client_cert_name)
    return Access.WRITE if names and set(names) <= policy.write_client_cns else Access.READ


def access_of(policy: AccessPolicy, authorization: str, client_cert_name: str | None) -> Access:
    level = Access.WRITE
    if policy.checks_tokens:
        level = min(level, token_access(policy, authorization))
    return min(level, certificate_access(policy, client_cert_name))


def _refusal(policy: AccessPolicy, level: Access) -> Response:
    if level is Access.NONE and policy.checks_tokens:
        return problem_response(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
    if level is Access.NONE:
        return problem_response(401, "no verified client certificate")
    return problem_response(
        403, "read-only access: this call needs the read-write token (or a client certificate whose common name "
        "--write-client-cn lists)",
    )  # fmt: skip


def client_cert_name(scope: Mapping[str, Any]) -> str | None:
    """The client certificate's subject from the ASGI TLS extension (set by ClientCertProtocol)."""
    tls = scope.get("extensions", {}).get("tls") or {}
    name = tls.get("client_cert_name")
    return name if isinstance(name, str) else None


def bearer_header(request: Request) -> str:
    return request.headers.get("authorization", "")


def add_access_control(
    app: FastAPI,
    policy: AccessPolicy,
    checked_elsewhere: Callable[[str], bool],
    credentials: Callable[[Request], str] = bearer_header,
) -> None:
    """Check every request but the probes and the paths `checked_elsewhere` names (the console checks its own
    with the same policy: auditwatch/console/app.py). `credentials`: a request's bearer credentials (the
    console's also takes its login cookie for the API docs: auditwatch/console/session.py)."""

    @app.middleware("http")
    async def check_access(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path not in OPEN_PATHS and not checked_elsewhere(request.url.path):
            level = access_of(policy, credentials(request), client_cert_name(request.scope))
            needed = Access.READ if request.method in READ_METHODS else Access.WRITE
            if level < needed:
                return _refusal(policy, level)
        return await call_next(request)


# ---- client certificate subjects ---------------------------------------------------------------------------

_SHORT_NAMES = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
                "localityName": "L", "stateOrProvinceName": "ST", "domainComponent": "DC", "userId": "UID"}  # fmt: skip
_SPECIAL = re.compile(r'([\\,+"<>;=])')
_SEPARATOR = re.compile(r"(?<!\\)(?:\\\\)*[,+]")


def _escape(value: str) -> str:
    text = _SPECIAL.sub(r"\\\1", value).replace("\x00", "\\00")
    if text.startswith(("#", " ")):
        text = "\\" + text
    if text.endswith(" ") and not text.endswith("\\ "):
        text = text[:-1] + "\\ "
    return text


def subject_name(peercert: Any) -> str | None:
    """The RFC 4514 subject of a certificate as `ssl.SSLSocket.getpeercert()` gives it (None without one)."""
    if not isinstance(peercert, dict) or not peercert.get("subject"):
        return None
    rdns = ["+".join(f"{_SHORT_NAMES.get(kind, kind)}={_escape(value)}" for kind, value in rdn)
            for rdn in peercert["subject"]]  # fmt: skip
    return ",".join(reversed(rdns))  # RFC 4514 writes the most specific RDN first


def _split(name: str) -> Iterable[str]:
    start = 0
    for m in _SEPARATOR.finditer(name):
        yield name[start : m.end() - 1]
        start = m.end()
    yield name[start:]


def _unescape(value: str) -> str:
    return re.sub(r"\\([0-9A-Fa-f]{2}|.)", lambda m: chr(int(m[1], 16)) if len(m[1]) == 2 else m[1], value)


def common_names(name: str) -> list[str]:
    """The CN values of an RFC 4514 distinguished name."""
    found = []
    for attribute in _split(name):
        kind, sep, value = attribute.partition("=")
        if sep and kind.strip().upper() in ("CN", "COMMONNAME", "2.5.4.3"):
            found.append(_unescape(value))
    return found


def _with_client_cert(app: Any, name: str) -> Any:
    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope = {**scope, "extensions": {**(scope.get("extensions") or {}), "tls": {"client_cert_name": name}}}
        await app(scope, receive, send)

    return asgi


class ClientCertProtocol(ProblemH11Protocol):
    """uvicorn's h11 protocol (its refusals as problems: auditwatch/http_protocols.py) that also hands the app
    each connection's verified client certificate subject (the ASGI TLS extension's `client_cert_name`), which
    uvicorn itself does not."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        name = subject_name(transport.get_extra_info("peercert"))
        if name is not None:
            self.app = _with_client_cert(self.app, name)
