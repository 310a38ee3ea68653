"""What a command checks before it says it runs (TLS files, the address), `--version`, a mistyped option
answered under the usage of the command it belongs to, and the log settings; each refusal one line."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import CliRun, RunCli, clean_env
from tests.support.paths import PYTHON, ROOT
from tests.support.tls import Pki, make_pki

USAGE = 2
LISTENERS = ("serve", "api", "ingest")


@pytest.fixture(autouse=True)
def never_listens(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_cli: RunCli) -> None:
    """A listener that should have refused to start fails the test instead of serving in this process. (After
    `run_cli`, which clears AUDITWATCH_* variables.)"""
    import auditwatch.server

    def run_http(*_: Any) -> None:
        raise AssertionError("the listener started")

    monkeypatch.setattr(auditwatch.server, "run_http", run_http)
    monkeypatch.setenv("AUDITWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # ingest's; never reached
    monkeypatch.setenv("AUDITWATCH_DB_URL", f"sqlite:///{tmp_path / 'alerts.db'}")  # serve's and api's


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    yield make_pki(tmp_path_factory.mktemp("pki"))


def refusal(result: CliRun, status: int = USAGE) -> str:
    """One line on stderr, no banner, no traceback, the expected status; the line without its prefix."""
    assert "Traceback" not in result.err and "listening on" not in result.out, result
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("auditwatch: "), result.err
    assert result.code == status, result
    return lines[0].removeprefix("auditwatch: ")


def listener(run_cli: RunCli, command: str, *args: str) -> CliRun:
    return run_cli(command, "--port", "1", *args)


def test_version_comes_from_the_package_metadata(run_cli: RunCli) -> None:
    result = run_cli("--version")
    assert (result.code, result.out, result.err) == (0, f"auditwatch {version('auditwatch')}\n", "")


def test_python_dash_m_auditwatch_is_the_command() -> None:
    done = subprocess.run([PYTHON, "-m", "auditwatch", "serve", "--port", "0"], capture_output=True, timeout=120,
                          cwd=ROOT, env=clean_env(), check=False)  # fmt: skip
    assert (done.returncode, done.stderr.decode().count("\n")) == (2, 1), done.stderr
    assert done.stderr.decode().startswith("auditwatch: bad setting: port")


def test_tls_files_are_checked_before_anything_listens(pki: Pki, tmp_path: Path, run_cli: RunCli) -> None:
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(["openssl", "pkey", "-in", pki.server_key, "-aes256", "-passout", "pass:x", "-out", encrypted],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    cert, key, missing = str(pki.server_cert), str(pki.server_key), str(tmp_path / "missing.pem")
    cases = {
        ("--tls-cert", cert, "--tls-key", str(pki.client_key)): f"--tls-key {pki.client_key} is not the key of "
        f"--tls-cert {cert}: give the certificate's own key",
        ("--tls-cert", key, "--tls-key", key): f"--tls-cert {key} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ("--tls-cert", cert, "--tls-key", cert): f"--tls-key {cert} holds no PEM private key (-----BEGIN PRIVATE KEY-----)",
        ("--tls-cert", cert, "--tls-key", str(encrypted)): f"--tls-key {encrypted} is encrypted: give auditwatch the "
        "key unencrypted (openssl pkey -in KEY -out NEW)",
        ("--tls-cert", missing, "--tls-key", key): f"cannot read --tls-cert {missing}: No such file or directory",
        ("--tls-cert", cert, "--tls-key", str(tmp_path)): f"cannot read --tls-key {tmp_path}: Is a directory",
        ("--tls-cert", cert, "--tls-key", key, "--tls-client-ca", key): f"--tls-client-ca {key} holds no PEM "
        "certificate (-----BEGIN CERTIFICATE-----)",
    }  # fmt: skip
    for command in LISTENERS:
        for args, reason in cases.items():
            assert refusal(listener(run_cli, command, *args)) == reason, (command, args)
    for args, reason in cases.items():  # detect's metrics listener: before the store, Kafka or a thread
        assert refusal(run_cli("detect", "--metrics-port", "18305", *args)) == reason, args


def test_detect_refuses_access_flags_without_its_metrics_listener(pki: Pki, run_cli: RunCli) -> None:
    line = refusal(run_cli("detect", "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.client_key)))
    assert line == "--tls-cert, --tls-key: detect's access flags apply to its metrics listener: add --metrics-port " \
        "PORT or drop them"  # fmt: skip
    line = refusal(run_cli("detect", "--insecure", "--write-client-cn", "apiserver"))
    assert line.startswith("--write-client-cn, --insecure: detect's access flags apply to its metrics listener")


def test_the_banner_brackets_an_ipv6_address(monkeypatch: pytest.MonkeyPatch, run_cli: RunCli) -> None:
    import auditwatch.server

    def run_http(_app: Any, _settings: Any, sock: socket.socket) -> int:  # the banner was printed: serve nothing
        sock.close()
        return 0

    monkeypatch.setattr(auditwatch.server, "run_http", run_http)
    for command in LISTENERS:
        with socket.create_server(("::1", 0), family=socket.AF_INET6) as taken:
            port = taken.getsockname()[1]
        result = run_cli(command, "--host", "::1", "--port", str(port))
        assert result.code == 0, result
        assert f"listening on http://[::1]:{port}\n" in result.out, result.out
        assert f"POST http://[::1]:{port}/audit/webhook" in result.out or command == "api", result.out


def test_an_address_that_is_not_this_machines_is_refused(run_cli: RunCli) -> None:
    for command in LISTENERS:
        line = refusal(listener(run_cli, command, "--host", "192.0.2.7", "--insecure"))
        assert line == "cannot listen on 192.0.2.7:1: 192.0.2.7 is not an address of this machine: fix --host"


def test_insecure_outside_loopback_starts_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, run_cli: RunCli
) -> None:
    """--insecure on 0.0.0.0 without a token: the banner, and a warning line that anyone can read and write. (The
    socket is a loopback one: the test listens nowhere else.)"""
    import auditwatch.preflight
    import auditwatch.server

    def bind_listener(_host: str, _port: int, *, shared: bool = False) -> socket.socket:
        return socket.create_server(("127.0.0.1", 0))

    monkeypatch.setattr(auditwatch.preflight, "bind_listener", bind_listener)
    monkeypatch.setattr(auditwatch.server, "run_http", lambda _app, _settings, sock: sock.close() or 0)
    (tmp_path / "token").write_text("a-token-0123456789")
    warning = ("auditwatch: warning: --insecure: 0.0.0.0:8443 takes requests without authentication: whoever reaches "
               "it can read the alerts and post audit events, unless a proxy in front authenticates them; it answers "
               "only requests for localhost, an IP address or {} (others get 421): add the name clients use, e.g. the "
               "one the proxy passes on, with --allowed-host NAME or *.DOMAIN (AUDITWATCH_ALLOWED_HOSTS)")  # fmt: skip
    for command in LISTENERS:
        result = run_cli(command, "--host", "0.0.0.0", "--port", "8443", "--insecure")
        assert result.code == 0 and "listening on http://0.0.0.0:8443" in result.out, result
        assert warning.format("no other name") in result.err.splitlines(), result.err
        named = run_cli(command, "--host", "0.0.0.0", "--port", "8443", "--insecure", "--allowed-host", "aw.lan",
                        "--allowed-host", "*.proxy.lan")  # fmt: skip
        assert warning.format("aw.lan, *.proxy.lan") in named.err.splitlines(), named.err
        quiet = run_cli(command, "--host", "0.0.0.0", "--port", "8443", "--insecure", "--token-file",
                        str(tmp_path / "token"))  # fmt: skip
        assert quiet.code == 0 and "warning" not in quiet.err, quiet


@pytest.mark.parametrize(
    ("argv", "usage", "error"),
    [
        (["serve", "--bogus"], "auditwatch serve", "unrecognized arguments: --bogus"),
        (["serve", "--port", "1", "extra"], "auditwatch serve", "unrecognized arguments: extra"),
        (["serve", "--port"], "auditwatch serve", "argument --port: expected one argument"),
        (["serve", "--port", "eighty"], "auditwatch serve", "argument --port: invalid int value: 'eighty'"),
        (["detect", "--kafka-wait", "soon"], "auditwatch detect", "argument --kafka-wait: invalid float value"),
        (["replay"], "auditwatch replay", "the following arguments are required: PATH"),
        (["replay", "x.log", "--bogus"], "auditwatch replay", "unrecognized arguments: --bogus"),
        (["rules", "test", "--bogus"], "auditwatch rules test", "unrecognized arguments: --bogus"),
        (["rules"], "auditwatch rules", "the following arguments are required: COMMAND"),
        (["api", "--log-format", "xml"], "auditwatch api", "argument --log-format: invalid choice: 'xml'"),
        (["--bogus", "serve"], "auditwatch", "unrecognized arguments: --bogus"),  # before the command: auditwatch's
        (["servee"], "auditwatch", "argument COMMAND: invalid choice: 'servee'"),
    ],
)
def test_an_option_error_shows_the_usage_of_its_command(
    argv: list[str], usage: str, error: str, run_cli: RunCli
) -> None:
    result = run_cli(*argv)
    assert result.code == USAGE and result.out == "" and "Traceback" not in result.err
    assert result.err.startswith(f"usage: {usage} [-h]"), result.err
    assert result.err.splitlines()[-1].startswith(f"{usage}: error: {error}"), result.err


def test_every_command_takes_the_log_options(run_cli: RunCli) -> None:
    for argv in (["serve"], ["ingest"], ["detect"], ["api"], ["replay"], ["convert"], ["rules", "lint"],
                 ["policy", "check"], ["demo"]):  # fmt: skip
        out = run_cli(*argv, "--help").out
        assert "--log-format {text,json}" in out and "--log-level {debug,info,warning,error}" in out, argv


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("AUDITWATCH_LOG_FORMAT", "xml", "bad setting: AUDITWATCH_LOG_FORMAT: 'xml' is not one of text, json"),
        ("AUDITWATCH_LOG_LEVEL", "loud", "bad setting: AUDITWATCH_LOG_LEVEL: 'loud' is not one of debug, info, "
         "warning, error"),
        ("AUDITWATCH_KAFKA_WAIT_S", "-1", "bad setting: kafka_wait_s: Value error, must be between 0 and 86400 seconds"),
    ],
)  # fmt: skip
def test_bad_log_and_wait_settings_are_one_line(
    name: str, value: str, reason: str, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    assert refusal(run_cli("detect", "--kafka", "127.0.0.1:1", "--db", "sqlite://")) == reason
