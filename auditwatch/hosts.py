"""The Host check of a listener without authentication: the defence against DNS rebinding.

A web page can make the browser send requests to a listener on 127.0.0.1 under a name of its own
(`evil.example`, which its DNS answers with 127.0.0.1 once the page has loaded): the page is then same-origin with
the listener and reads its answers, alerts and console pages included. That request carries the page's name in its
Host header, which a page cannot set. So a listener that authenticates nobody (`serve` on loopback, or behind a
proxy with `--insecure`) takes only requests whose Host names it as a local client or its operator does:

- `localhost` and `*.localhost` (RFC 6761: they never resolve elsewhere), with any port;
- an IP address (`127.0.0.1:8080`, `[::1]:8080`, or the pod IP a kubelet probe or Prometheus uses): a page
  whose origin is an address is on that address, so there is no name to rebind;
- the names `--allowed-host` lists (AUDITWATCH_ALLOWED_HOSTS), e.g. the name a proxy in front passes on, and
  the names under a domain it lists as `*.example.com` (at any depth; not `example.com` itself), compared as
  lower-case suffixes, never as a pattern built from the setting;
- no Host at all (HTTP/1.0): browsers always send one.

Anything else gets 421 Misdirected Request: the request names a host this listener does not answer for (403
would say that the client lacks a right, which no credential could give it). With a token or client certificates
a rebound page has neither, so the check is not installed (auditwatch/server.py `_app`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import problem_response

_NAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*")  # compose names may have `_`
_HOST = re.compile(r"(?:\[(?P<ipv6>[^\]]+)\]|(?P<name>[^:\[\]]+))(?::\d*)?")  # a Host header: host[:port]
REFUSAL = (
    "this listener has no authentication, so it answers only requests for localhost, an IP address or a name "
    "given with --allowed-host (AUDITWATCH_ALLOWED_HOSTS): pass the name this request used there, or set a token"
)


WILDCARD = "*."  # `*.example.com`: every name under example.com


def allowed_host_name(value: str) -> str:
    """`value` as `--allowed-host` takes it (a host name, `*.` and a domain name, or an IP address; without port),
    lower case, one trailing dot dropped; ValueError saying why otherwise."""
    name = value.strip().lower().removesuffix(".")
    if _is_address(name.removeprefix("[").removesuffix("]")):
        return name.removeprefix("[").removesuffix("]")
    domain = name.removeprefix(WILDCARD)
    if "*" in domain or (domain != name and (_is_address(domain) or not _NAME.fullmatch(domain))):
        raise ValueError(
            f"{value[:100]!r} is not a host name nor a wildcard: '*' goes only as '*.' before a domain name, "
            "e.g. *.example.com"
        )
    if len(name) > 253 or not _NAME.fullmatch(domain):
        raise ValueError(f"{value[:100]!r} is not a host name (letters, digits, '-', '_' and dots; no port, no scheme)")
    return name


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_local_name(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost")


@dataclass(frozen=True, slots=True)
class AllowedHosts:
    """The names `--allowed-host` lists (as `allowed_host_name` returns them): exact ones, and the suffixes
    (`.example.com`) of its `*.example.com`."""

    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()

    @classmethod
    def of(cls, allowed: Iterable[str]) -> AllowedHosts:
        given = frozenset(allowed)
        wildcards = sorted(name for name in given if name.startswith(WILDCARD))
        return cls(given.difference(wildcards), tuple(name.removeprefix("*") for name in wildcards))

    def allow(self, name: str) -> bool:
        """Whether they name this lower-case host name (without port or trailing dot): time linear in the name's
        length times the number of `*.` entries."""
        return name in self.names or any(name.endswith(suffix) for suffix in self.suffixes)


def host_allowed(host: str | None, allowed: AllowedHosts) -> bool:
    """Whether a request with this Host header (None: without one) may reach an unauthenticated listener."""
    if not host:
        return True
    found = _HOST.fullmatch(host.strip().lower())
    if found is None:
        return False
    if found["ipv6"] is not None:
        return _is_address(found["ipv6"]) and ":" in found["ipv6"]
    name = found["name"].removesuffix(".")
    if _is_address(name):
        return True
    return bool(_NAME.fullmatch(name)) and (is_local_name(name) or allowed.allow(name))


class HostCheck:
    """ASGI middleware: requests whose Host `host_allowed` refuses get 421 with problem details (never the Host:
    it is what a page chose)."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = AllowedHosts.of(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hosts = [value for name, value in scope["headers"] if name == b"host"]
            host = hosts[0].decode("latin-1") if len(hosts) == 1 else None
            if len(hosts) > 1 or not host_allowed(host, self.allowed):  # RFC 9112 3.2: one Host only
                await problem_response(421, REFUSAL)(scope, receive, send)
                return
        await self.app(scope, receive, send)
