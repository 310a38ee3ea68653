"""What the commands say about their database URL: never a password (in the user part or the query string),
a URL the driver refuses is a configuration error (exit 2), and where the alerts go when no URL is given."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from tests.support.cli import CliRun, RunCli
from tests.support.paths import SCENARIO
from tests.support.processes import free_port

USAGE = 2
FAILURE = 1
SECRET = "S3cretPW29"
UNREACHABLE = f"postgresql+psycopg://auditwatch@127.0.0.1:1/auditwatch?password={SECRET}&sslpassword={SECRET}"


@pytest.fixture(autouse=True)
def returns_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The long-running commands stop once their banner is out: listeners do not serve, detect does not
    consume (everything before, the store and Kafka included, is real)."""
    import auditwatch.commands.processes
    import auditwatch.server

    def run_http(_app: object, _settings: object, sock: socket.socket) -> int:
        sock.close()
        return 0

    monkeypatch.setattr(auditwatch.server, "run_http", run_http)
    monkeypatch.setattr(auditwatch.commands.processes, "_consume", lambda *_: None)


def one_line(result: CliRun, status: int) -> str:
    assert "Traceback" not in result.err and result.code == status, result
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("auditwatch: "), result.err
    return lines[0].removeprefix("auditwatch: ")


def commands(url: str, kafka: str) -> list[list[str]]:
    return [
        ["serve", "--port", str(free_port()), "--db", url],
        ["api", "--port", str(free_port()), "--db", url],
        ["detect", "--kafka", kafka, "--topic", f"s29-db-url-{uuid.uuid4().hex[:8]}", "--db", url],
        ["replay", str(SCENARIO), "--db", url],
        ["demo", "--db", url],
    ]


def test_a_password_in_the_query_string_is_never_shown(pg_url: str, run_cli: RunCli) -> None:
    from tests.support.services import kafka_bootstrap

    for args in commands(UNREACHABLE, "127.0.0.1:1"):  # the store refused: before detect waits for Kafka
        line = one_line(run_cli(*args), FAILURE)
        assert line.startswith(
            "cannot open the alert store postgresql+psycopg://auditwatch@127.0.0.1:1/auditwatch?password=***"
            "&sslpassword=***: "
        ), line
        assert SECRET not in line
    # the server trusts local connections: it ignores the password and the banners show the URL
    for args in commands(f"{pg_url}?password={SECRET}", kafka_bootstrap()):
        result = run_cli(*args)
        assert result.code == 0, result
        assert "?password=***" in result.out + result.err, (args, result)
        assert SECRET not in result.out + result.err, (args, result)


def test_the_redaction_of_the_url_keeps_its_other_parameters() -> None:
    from auditwatch.startup import shown_url

    shown = shown_url(f"postgresql+psycopg://app:{SECRET}@db/x?sslmode=require&password=a&api_token=b&passfile=/p")
    assert shown == "postgresql+psycopg://app:***@db/x?sslmode=require&password=***&api_token=***&passfile=%2Fp"


def test_detect_needs_a_database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli) -> None:
    monkeypatch.chdir(tmp_path)
    line = one_line(run_cli("detect", "--kafka", "127.0.0.1:1"), USAGE)
    assert line == (
        "detect needs --db URL (or --db-url-file, AUDITWATCH_DB_URL): the database that every detect and api share, "
        "e.g. postgresql+psycopg://USER@HOST/DB"
    )
    assert not (tmp_path / "auditwatch.db").exists()
    monkeypatch.setenv("AUDITWATCH_DB_URL", "postgresql+psycopg://auditwatch@127.0.0.1:1/auditwatch")  # as given
    assert one_line(run_cli("detect", "--kafka", "127.0.0.1:1"), FAILURE).startswith("cannot open the alert store")


def test_api_names_the_sqlite_file_it_serves_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("api", "--port", str(free_port()))
    assert result.code == 0, result
    assert result.err == (
        f"auditwatch: warning: no --db (nor --db-url-file): serving the SQLite file {tmp_path / 'auditwatch.db'}\n"
    )
    assert "store    sqlite:///auditwatch.db" in result.out
    given = run_cli("api", "--port", str(free_port()), "--db", f"sqlite:///{tmp_path / 'replay.db'}")
    assert given.code == 0 and given.err == "", given


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("sslmode=bogus", 'invalid sslmode value: "bogus"'),
        ("bogus=1", 'invalid connection option "bogus"'),
        ("connect_timeout=soon", "bad value for connect_timeout: 'soon'"),
    ],
)
def test_an_option_the_driver_refuses_is_a_configuration_error(
    query: str, reason: str, pg_url: str, run_cli: RunCli
) -> None:
    url = f"{pg_url}?{query}"  # a server that answers: only the option is wrong
    for args in commands(url, "127.0.0.1:1"):
        line = one_line(run_cli(*args), USAGE)
        assert line == f"cannot open the alert store {url}: bad database URL: {reason}", args


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("mode=ro", "SQLAlchemy would ignore its parameter 'mode': give SQLite's own parameters as "
                    "sqlite:///file:FILE?mode=ro&uri=true, or remove it"),
        (f"cache=shared&password={SECRET}", "SQLAlchemy would ignore its parameters 'cache', 'password'"),
        ("mode=ro&uri=true", "with uri=true the database must be a file: URI"),  # else alerts.db?mode=ro is the file
    ],
)  # fmt: skip
def test_a_sqlite_parameter_that_would_not_reach_sqlite_is_a_configuration_error(
    query: str, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    monkeypatch.chdir(tmp_path)
    for args in commands(f"sqlite:///alerts.db?{query}", "127.0.0.1:1"):
        line = one_line(run_cli(*args), USAGE)
        assert line.startswith(f"bad database URL: {reason}"), (args, line)
        assert SECRET not in line
    assert list(tmp_path.iterdir()) == []  # no database file made, writable or oddly named


def test_sqlite_judges_the_parameters_of_a_file_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    monkeypatch.chdir(tmp_path)
    line = one_line(
        run_cli("api", "--port", str(free_port()), "--db", "sqlite:///file:alerts.db?mode=bogus&uri=true"), USAGE
    )
    assert line.endswith(": bad database URL: no such access mode: bogus"), line
    for url in ("sqlite:///file:alerts.db?mode=rwc&uri=true", "sqlite:///alerts.db?timeout=3"):
        result = run_cli("api", "--port", str(free_port()), "--db", url)
        assert result.code == 0 and result.err == "", (url, result)
    assert [p.name for p in tmp_path.iterdir()] == ["alerts.db"]
