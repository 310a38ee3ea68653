"""DNS rebinding against a real `serve` without a token: a request that names the listener by a name the operator
did not allow (what a page rebound to 127.0.0.1 sends) is refused on the REST API, the console and the webhook;
loopback names, addresses, `--allowed-host` names and the names under its `*.DOMAIN` are served; with a token, any
Host is served as before."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from auditwatch.hosts import REFUSAL
from tests.support.browser import chromium
from tests.support.events import event_list, exec_event
from tests.support.problems import problem_detail
from tests.support.processes import Proc, free_port

pytestmark = pytest.mark.integration
TOKEN = "host-check-t0ken-0123456789"
HTML = {"Accept": "text/html"}


@contextmanager
def started(tmp_path: Path, command: str, *args: str, host: str = "127.0.0.1") -> Iterator[str]:
    """`auditwatch COMMAND` listening on `host` (a fresh port and SQLite file), its base URL; stopped after."""
    port = free_port() if host == "127.0.0.1" else free_ipv6_port()
    db = f"sqlite:///{tmp_path / f'{command}.db'}"
    proc = Proc([command, "--host", host, "--port", str(port), "--db", db, *args], tmp_path / f"{command}.log")
    base = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    try:
        proc.wait_http(f"{base}/healthz")
        yield base
    finally:
        proc.stop()


def free_ipv6_port() -> int:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[str]:
    with started(tmp_path, "serve", "--allowed-host", "auditwatch.lan", "--allowed-host", "*.Proxy.LAN") as base:
        yield base


def calls(base: str, host: str | None, headers: dict[str, str] | None = None) -> dict[str, httpx.Response]:
    """One request of each kind, naming the listener `host` in the Host header."""
    extra = {**({"Host": host} if host else {}), **(headers or {})}
    with httpx.Client(base_url=base, headers=extra, timeout=30) as client:
        return {
            "REST": client.get("/api/v1/alerts"),
            "console": client.get("/", headers=HTML),
            "webhook": client.post("/audit/webhook", content=event_list([exec_event()])),
            "docs": client.get("/openapi.json"),
            "probe": client.get("/healthz"),
        }


def test_a_name_the_operator_did_not_allow_is_refused_everywhere(serve: str) -> None:
    port = serve.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", f"localhost.evil.example:{port}", f"<b>x</b>:{port}"):
        for what, resp in calls(serve, host).items():
            assert problem_detail(resp, 421) == REFUSAL, (host, what)
            assert "evil" not in resp.text and "<b>" not in resp.text  # never the Host echoed
    assert httpx.get(f"{serve}/api/v1/alerts", timeout=10).json()["items"] == []  # the refused webhook stored nothing


def test_loopback_names_addresses_and_allowed_names_are_served(serve: str) -> None:
    port = serve.rsplit(":", 1)[1]
    hosts = (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", f"console.localhost:{port}",
             f"auditwatch.lan:{port}", "AuditWatch.LAN")  # fmt: skip
    for host in hosts:
        answers = calls(serve, host)
        assert {what: resp.status_code for what, resp in answers.items()} == dict.fromkeys(answers, 200), host
        assert "<h1>Alerts</h1>" in answers["console"].text


def test_a_star_dot_domain_allows_every_name_under_the_domain_and_no_other(serve: str) -> None:
    port = serve.rsplit(":", 1)[1]
    for host in (f"a.proxy.lan:{port}", "eu-1.aw.proxy.lan", "A.PROXY.LAN.", "x_1.proxy.lan"):
        answers = calls(serve, host)
        assert {what: resp.status_code for what, resp in answers.items()} == dict.fromkeys(answers, 200), host
    for host in ("proxy.lan", f"evilproxy.lan:{port}", "a.proxy.lan.evil.example", "a.proxy.lanx", "*.proxy.lan"):
        for what, resp in calls(serve, host).items():
            assert problem_detail(resp, 421) == REFUSAL, (host, what)


def test_a_request_without_host_is_served(serve: str) -> None:
    """HTTP/1.0 needs no Host, and browsers always send one: a rebound page cannot omit it."""
    port = int(serve.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /api/v1/alerts HTTP/1.0\r\n\r\n")
        answer = b""
        for _ in range(1000):  # until the server closes (HTTP/1.0)
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def test_over_ipv6_loopback(tmp_path: Path) -> None:
    try:
        free_ipv6_port()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with started(tmp_path, "serve", host="::1") as base:
        assert httpx.get(f"{base}/api/v1/alerts", timeout=10).status_code == 200  # Host: [::1]:PORT
        refused = httpx.get(f"{base}/api/v1/alerts", headers={"Host": "evil.example"}, timeout=10)
        assert problem_detail(refused, 421) == REFUSAL


def test_with_a_token_any_host_is_served_as_before(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    with started(tmp_path, "serve", "--token-file", str(tmp_path / "token")) as base:
        answers = calls(base, "evil.example", {"Authorization": f"Bearer {TOKEN}"})
        assert {what: resp.status_code for what, resp in answers.items()} == dict.fromkeys(answers, 200)
        anonymous = calls(base, "evil.example")
        assert problem_detail(anonymous["REST"], 401) == "missing or wrong bearer token"  # the token's check
        assert anonymous["console"].status_code == 303  # to the login form


def test_the_api_process_checks_hosts_too(tmp_path: Path) -> None:
    with started(tmp_path, "api") as base:
        refused = httpx.get(f"{base}/", headers={"Host": "evil.example", **HTML}, timeout=10)
        assert problem_detail(refused, 421) == REFUSAL
        assert httpx.get(f"{base}/api/v1/alerts", headers={"Host": "localhost"}, timeout=10).status_code == 200


def test_a_browser_whose_dns_rebinds_a_name_to_loopback_gets_the_refusal(tmp_path: Path, serve: str) -> None:
    """Chromium resolving evil.example to 127.0.0.1, as the attacker's DNS does once its page has loaded: the page
    the browser gets under that name is the refusal, not the console (with its alerts and CSRF token)."""
    port = serve.rsplit(":", 1)[1]
    (tmp_path / "chromium").mkdir()
    driver = chromium(tmp_path / "chromium", "--host-resolver-rules=MAP evil.example 127.0.0.1")
    try:
        driver.get(f"http://evil.example:{port}/")
        refused = driver.page_source
        driver.get(f"http://localhost:{port}/")
        served = driver.page_source
    finally:
        driver.quit()
    assert "421" not in served and "<h1>Alerts</h1>" in served  # the same browser, by a local name
    assert "--allowed-host" in refused and "Alerts" not in refused and "csrf" not in refused
