"""The Host check of listeners without authentication (the defence against DNS rebinding): which Host headers
pass, what `--allowed-host` takes (names, and `*.DOMAIN`), detect's metrics listener and an app served by a
program of its own behind it. `serve` and `api` as processes: tests/integration/test_host_check.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from auditwatch.hosts import REFUSAL, AllowedHosts, allowed_host_name, host_allowed
from auditwatch.metrics import Metrics
from auditwatch.metrics_listener import MetricsListener
from auditwatch.server import create_api_app, create_serve_app
from auditwatch.settings import Settings
from tests.support.cli import RunCli
from tests.support.events import event_list, exec_event
from tests.support.problems import problem_detail
from tests.support.processes import free_port, served_in_thread

EVIL = {"Host": "evil.example"}
ALLOWED = AllowedHosts.of(["auditwatch.lan", "proxy_1", "*.svc.cluster.local", "*.corp_1"])


@pytest.mark.parametrize(
    "host",
    [
        None, "", "localhost", "localhost:8080", "LOCALHOST:8080", "localhost.", "console.localhost:9000",
        "127.0.0.1", "127.0.0.1:8080", "127.8.9.10:1", "[::1]", "[::1]:8080", "[0:0:0:0:0:0:0:1]:8080",
        "10.1.2.3:8080",  # an address (a kubelet probe, a scrape by pod IP): no name a page could rebind
        "auditwatch.lan:8443", "AuditWatch.LAN", "proxy_1:80",
        "aw.ns.svc.cluster.local:8080", "AW.NS.SVC.Cluster.Local.", "a.b.c.svc.cluster.local", "x.corp_1",  # *.
    ],
)  # fmt: skip
def test_local_names_addresses_and_allowed_names_pass(host: str | None) -> None:
    assert host_allowed(host, ALLOWED)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example", "evil.example:8080", "localhost.evil.example", "evil-localhost", "sub.auditwatch.lan",
        "auditwatch.lan.evil.example", "[evil.example]:8080", "[127.0.0.1]:8080", "[::1", "::1", "localhost:80:80",
        "evil.example/.localhost", "x@localhost", "local host", "127.1",
        "svc.cluster.local", "evilsvc.cluster.local", ".svc.cluster.local", "aw.svc.cluster.local.evil.example",
        "aw.svc.cluster.localhost.evil", "corp_1", "x.corp_10", "*.corp_1", "x.svc.cluster.local/.corp_1",
    ],
)  # fmt: skip
def test_other_names_and_malformed_hosts_are_refused(host: str) -> None:
    assert not host_allowed(host, ALLOWED)


def test_an_allowed_host_is_a_name_or_an_address_in_lower_case() -> None:
    assert allowed_host_name("AuditWatch.LAN.") == "auditwatch.lan"
    assert allowed_host_name(" proxy_1 ") == "proxy_1"
    assert allowed_host_name("[::1]") == "::1" and allowed_host_name("10.0.0.5") == "10.0.0.5"
    assert Settings(allowed_hosts="a.lan, B.lan").allowed_hosts == ["a.lan", "b.lan"]  # type: ignore[arg-type]
    assert allowed_host_name(" *.Svc.Cluster.Local. ") == "*.svc.cluster.local"


def test_a_wildcard_is_a_suffix_of_a_domain_s_names_not_the_domain() -> None:
    allowed = AllowedHosts.of(["*.lan", "lan.example", "*.lan"])
    assert allowed == AllowedHosts(frozenset({"lan.example"}), (".lan",))
    assert allowed.allow("x.lan") and allowed.allow("a.b.lan") and allowed.allow("lan.example")
    assert not allowed.allow("lan") and not allowed.allow("xlan") and not allowed.allow("x.lan.example.org")


@pytest.fixture
def no_listener(monkeypatch: pytest.MonkeyPatch, run_cli: RunCli) -> None:
    """A listener that should have refused to start fails the test instead (after `run_cli` cleared AUDITWATCH_*)."""
    import auditwatch.server

    def run_http(*_: Any) -> None:
        raise AssertionError("the listener started")

    monkeypatch.setattr(auditwatch.server, "run_http", run_http)


@pytest.mark.parametrize(
    "value", ["http://auditwatch.lan", "auditwatch.lan:8080", "a..b", "-a.lan", "a b", "", "a,b", "é.lan", ".lan"]
)
def test_the_cli_refuses_a_junk_allowed_host(no_listener: None, run_cli: RunCli, value: str) -> None:
    result = run_cli("serve", "--port", "1", "--allowed-host", "ok.lan", f"--allowed-host={value}")
    assert result.code == 2 and "Traceback" not in result.err, result
    (line,) = result.err.splitlines()
    assert line.startswith(f"auditwatch: bad setting: allowed_hosts: Value error, {value!r} is not a host name")


@pytest.mark.parametrize(
    "value", ["*", "*.", "a.*.b", "**.x", "*.*.x", "x.*", "*x.lan", "*.-x", "*.10.0.0.1", "*.lan:80"]
)
def test_the_cli_refuses_a_wildcard_that_is_not_star_dot_domain(no_listener: None, run_cli: RunCli, value: str) -> None:
    result = run_cli("serve", "--port", "1", f"--allowed-host={value}")
    assert result.code == 2 and "Traceback" not in result.err, result
    (line,) = result.err.splitlines()
    assert line == (
        f"auditwatch: bad setting: allowed_hosts: Value error, {value!r} is not a host name nor a wildcard: '*' goes "
        "only as '*.' before a domain name, e.g. *.example.com"
    )


def test_the_environment_variable_is_checked_too(
    no_listener: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDITWATCH_ALLOWED_HOSTS", "ok.lan,https://bad.lan/")
    result = run_cli("api", "--port", "1")
    assert result.code == 2 and "is not a host name" in result.err and len(result.err.splitlines()) == 1, result
    monkeypatch.setenv("AUDITWATCH_ALLOWED_HOSTS", "ok.lan,*.ok.lan,a.*.lan")
    result = run_cli("api", "--port", "1")
    assert result.code == 2 and "'a.*.lan' is not a host name nor a wildcard" in result.err, result


def test_detect_refuses_allowed_host_without_its_metrics_listener(run_cli: RunCli) -> None:
    result = run_cli("detect", "--kafka", "127.0.0.1:1", "--db", "sqlite://", "--allowed-host", "prometheus.lan")
    assert result.code == 2 and "--allowed-host: detect's access flags apply to its metrics listener" in result.err


@contextmanager
def metrics_listener(**settings: Any) -> Iterator[str]:
    port = free_port()
    listener = MetricsListener(Settings(host="127.0.0.1", port=port, **settings), Metrics.for_api())
    listener.start()
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        for _ in range(100):
            try:
                httpx.get(url, timeout=5)
                break
            except httpx.ConnectError:
                listener.thread.join(0.05)
        yield url
    finally:
        listener.stop()


def test_detect_s_metrics_listener_without_a_token_answers_local_and_allowed_names_only() -> None:
    with metrics_listener(allowed_hosts=["prometheus.lan", "*.monitoring.svc"]) as url:
        refused = httpx.get(url, headers={"Host": "evil.example"}, timeout=5)
        assert problem_detail(refused, 421) == REFUSAL and "evil" not in refused.text
        for host in ("evil.example", "monitoring.svc", "prometheus.lan.evil.example", "x.monitoring.svc.evil"):
            assert httpx.get(url, headers={"Host": host}, timeout=5).status_code == 421, host
        for host in ("localhost:9090", "127.0.0.1", "prometheus.lan:9090", "prom-0.monitoring.svc:9090"):
            assert httpx.get(url, headers={"Host": host}, timeout=5).status_code == 200, host


def test_an_app_of_the_factories_served_by_a_program_of_its_own_checks_hosts(db_url: str) -> None:
    """The check is part of the app: a program that builds it with create_serve_app and serves it itself gets it.
    A refused webhook request counts as a 4xx webhook answer (a proxy passing a name not allowed shows)."""
    with served_in_thread(create_serve_app(Settings(db_url=db_url, allowed_hosts=["*.aw.lan"]))) as port:
        base = f"http://127.0.0.1:{port}"
        refused = httpx.post(f"{base}/audit/webhook", content=event_list([exec_event()]), headers=EVIL, timeout=10)
        assert problem_detail(refused, 421) == REFUSAL
        assert problem_detail(httpx.get(f"{base}/api/v1/alerts", headers=EVIL, timeout=10), 421) == REFUSAL
        for host in ("localhost", "127.0.0.1", "console.aw.lan"):
            assert httpx.get(f"{base}/api/v1/alerts", headers={"Host": host}, timeout=10).json()["items"] == []
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert 'auditwatch_webhook_responses_total{code="4xx"} 1.0' in metrics


def test_an_app_whose_settings_authenticate_takes_any_host(db_url: str) -> None:
    token = "embedded-t0ken-0123456789"
    with served_in_thread(create_api_app(Settings(db_url=db_url, api_token=token))) as port:
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {token}", **EVIL}
        assert httpx.get(f"{base}/api/v1/alerts", headers=auth, timeout=10).status_code == 200


def test_with_a_token_the_metrics_listener_takes_any_host() -> None:
    with metrics_listener(api_token="metrics-t0ken-0123456789") as url:
        auth = {"Authorization": "Bearer metrics-t0ken-0123456789"}
        assert httpx.get(url, headers={"Host": "evil.example", **auth}, timeout=5).status_code == 200
        assert httpx.get(url, headers={"Host": "evil.example"}, timeout=5).status_code == 401  # the token's check
