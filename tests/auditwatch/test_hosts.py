"""The Host check of listeners without authentication (the defence against DNS rebinding): which Host headers
pass, what `--allowed-host` takes, and detect's metrics listener behind it. `serve` and `api` as processes:
tests/integration/test_host_check.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from auditwatch.hosts import REFUSAL, allowed_host_name, host_allowed
from auditwatch.metrics import Metrics
from auditwatch.metrics_listener import MetricsListener
from auditwatch.settings import Settings
from tests.support.cli import RunCli
from tests.support.problems import problem_detail
from tests.support.processes import free_port

ALLOWED = frozenset({"auditwatch.lan", "proxy_1"})


@pytest.mark.parametrize(
    "host",
    [
        None, "", "localhost", "localhost:8080", "LOCALHOST:8080", "localhost.", "console.localhost:9000",
        "127.0.0.1", "127.0.0.1:8080", "127.8.9.10:1", "[::1]", "[::1]:8080", "[0:0:0:0:0:0:0:1]:8080",
        "10.1.2.3:8080",  # an address (a kubelet probe, a scrape by pod IP): no name a page could rebind
        "auditwatch.lan:8443", "AuditWatch.LAN", "proxy_1:80",
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
    ],
)  # fmt: skip
def test_other_names_and_malformed_hosts_are_refused(host: str) -> None:
    assert not host_allowed(host, ALLOWED)


def test_an_allowed_host_is_a_name_or_an_address_in_lower_case() -> None:
    assert allowed_host_name("AuditWatch.LAN.") == "auditwatch.lan"
    assert allowed_host_name(" proxy_1 ") == "proxy_1"
    assert allowed_host_name("[::1]") == "::1" and allowed_host_name("10.0.0.5") == "10.0.0.5"
    assert Settings(allowed_hosts="a.lan, B.lan").allowed_hosts == ["a.lan", "b.lan"]  # type: ignore[arg-type]


@pytest.fixture
def no_listener(monkeypatch: pytest.MonkeyPatch, run_cli: RunCli) -> None:
    """A listener that should have refused to start fails the test instead (after `run_cli` cleared AUDITWATCH_*)."""
    import auditwatch.server

    def run_http(*_: Any) -> None:
        raise AssertionError("the listener started")

    monkeypatch.setattr(auditwatch.server, "run_http", run_http)


@pytest.mark.parametrize(
    "value", ["http://auditwatch.lan", "auditwatch.lan:8080", "*", "*.lan", "a..b", "-a.lan", "a b", "", "a,b", "é.lan"]
)
def test_the_cli_refuses_a_junk_allowed_host(no_listener: None, run_cli: RunCli, value: str) -> None:
    result = run_cli("serve", "--port", "1", "--allowed-host", "ok.lan", f"--allowed-host={value}")
    assert result.code == 2 and "Traceback" not in result.err, result
    (line,) = result.err.splitlines()
    assert line.startswith(f"auditwatch: bad setting: allowed_hosts: Value error, {value!r} is not a host name")


def test_the_environment_variable_is_checked_too(
    no_listener: None, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDITWATCH_ALLOWED_HOSTS", "ok.lan,https://bad.lan/")
    result = run_cli("api", "--port", "1")
    assert result.code == 2 and "is not a host name" in result.err and len(result.err.splitlines()) == 1, result


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
    with metrics_listener(allowed_hosts=["prometheus.lan"]) as url:
        refused = httpx.get(url, headers={"Host": "evil.example"}, timeout=5)
        assert problem_detail(refused, 421) == REFUSAL and "evil" not in refused.text
        assert httpx.get(url, headers={"Host": "evil.example"}, timeout=5).status_code == 421
        for host in ("localhost:9090", "127.0.0.1", "prometheus.lan:9090"):
            assert httpx.get(url, headers={"Host": host}, timeout=5).status_code == 200, host


def test_with_a_token_the_metrics_listener_takes_any_host() -> None:
    with metrics_listener(api_token="metrics-t0ken-0123456789") as url:
        auth = {"Authorization": "Bearer metrics-t0ken-0123456789"}
        assert httpx.get(url, headers={"Host": "evil.example", **auth}, timeout=5).status_code == 200
        assert httpx.get(url, headers={"Host": "evil.example"}, timeout=5).status_code == 401  # the token's check
