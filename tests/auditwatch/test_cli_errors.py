"""A user's mistake gets one line naming the cause (and the fix, where it is obvious), never a traceback, and
the documented exit status: 2 for usage or configuration, 1 for a failure while running (`--help` says so)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditwatch.settings import Settings
from tests.support.cli import CliRun, RunCli, clean_env
from tests.support.events import exec_event
from tests.support.paths import PYTHON, ROOT, SCENARIO

USAGE = 2
FAILURE = 1
UNREACHABLE_PG = "postgresql+psycopg://auditwatch:s3cret@127.0.0.1:1/auditwatch"  # nothing listens on port 1
LISTENERS = ("serve", "ingest", "api")


@pytest.fixture(autouse=True)
def never_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listener that should have refused to start fails the test instead of serving in this process."""
    import auditwatch.server

    def run_http(*_: Any) -> None:
        raise AssertionError("the listener started")

    monkeypatch.setattr(auditwatch.server, "run_http", run_http)


def one_line(result: CliRun, status: int) -> str:
    """The refusal: exactly one line on stderr, no traceback, the expected exit status."""
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert result.code == status, result.err
    assert lines[0].startswith("auditwatch: ")
    return lines[0].removeprefix("auditwatch: ")


def replay(run_cli: RunCli, *args: str) -> CliRun:
    return run_cli("replay", str(SCENARIO), "--output", "-", "--quiet", *args)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("yesterday", "'yesterday' is not an RFC 3339 time (e.g. 2026-11-20T09:00:00Z)"),
        ("2026-11-31T00:00:00Z", "'2026-11-31T00:00:00Z' is not an RFC 3339 time (e.g. 2026-11-20T09:00:00Z)"),
        ("0001-01-01T00:00:00+14:00", "'0001-01-01T00:00:00+14:00' is out of range: not a date in UTC"),
        ("9999-12-31T23:59:59-14:00", "'9999-12-31T23:59:59-14:00' is out of range: not a date in UTC"),
    ],
)
def test_bad_since_or_until(value: str, reason: str, run_cli: RunCli) -> None:
    assert one_line(replay(run_cli, "--since", value), USAGE) == reason
    assert one_line(replay(run_cli, "--until", value), USAGE) == reason
    assert one_line(run_cli("convert", str(SCENARIO), "--since", value), USAGE) == reason


def test_bad_policy_file(tmp_path: Path, run_cli: RunCli) -> None:
    head = "apiVersion: audit.k8s.io/v1\nkind: Policy\n"
    files = {
        "missing.yaml": None,
        "syntax.yaml": head + "rules: [\n",
        "list.yaml": "- level: Metadata\n",
        "version.yaml": "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: []\n",
        "level.yaml": head + "rules:\n- level: Everything\n",
        "binary.yaml": b"\xff\xfe\x00",
    }
    for name, content in files.items():
        if isinstance(content, str):
            (tmp_path / name).write_text(content)
        elif content is not None:
            (tmp_path / name).write_bytes(content)
    reasons = {
        "missing.yaml": "cannot read policy {path}: No such file or directory",
        "syntax.yaml": "invalid audit policy: {path}: failed decoding: line 4: ",
        "list.yaml": "invalid audit policy: {path}: failed decoding: not a Policy object",
        "version.yaml": 'invalid audit policy: {path}: failed decoding: no kind "Policy" is registered for version',
        "level.yaml": 'invalid audit policy: rules[0].level: Unsupported value: "Everything"',
        "binary.yaml": "cannot read policy {path}: not UTF-8 text",
    }
    reasons[str(tmp_path)] = "cannot read policy {path}: Is a directory"  # a directory where a file is expected
    for name, reason in reasons.items():
        path = tmp_path / name
        line = one_line(replay(run_cli, "--policy", str(path)), USAGE)
        assert line.startswith(reason.format(path=path)), line
    for name in ("missing.yaml", "binary.yaml"):  # `policy check` reads the file the same way
        assert one_line(run_cli("policy", "check", str(tmp_path / name)), USAGE).startswith("cannot read policy")


def test_bad_rule_file(tmp_path: Path, run_cli: RunCli) -> None:
    bad = tmp_path / "bad-rule.yaml"
    bad.write_text("id: bad-rule\nname: x\nseverity: high\ndescription: d\nmitre: T1609\nmatch:\n  verb: {oops: 1}\n")
    line = one_line(replay(run_cli, "--rules", str(bad)), USAGE)
    assert line.startswith(f"cannot load rules: {bad}:7: unknown operator 'oops'")
    assert one_line(replay(run_cli, "--rules", str(tmp_path / "nope")), USAGE) == (
        f"cannot load rules: {tmp_path / 'nope'}: no such rule pack (builtin, falco, sigma), file or directory"
    )
    # several problems: one line each, under a line that counts them
    two = tmp_path / "two"
    two.mkdir()
    (two / "bad-rule.yaml").write_text(bad.read_text())
    (two / "other-rule.yaml").write_text(bad.read_text().replace("bad-rule", "other-rule"))
    result = replay(run_cli, "--rules", str(two))
    assert result.code == USAGE and "Traceback" not in result.err
    assert result.err.splitlines()[0] == "auditwatch: cannot load rules (2 errors):"


def test_a_rules_directory_without_rule_files(tmp_path: Path, run_cli: RunCli) -> None:
    """It would load no rule and detect nothing: serve and replay refuse it, rules lint and test fail."""
    (tmp_path / "notes.txt").write_text("no rules here\n")
    reason = f"{tmp_path}: the directory holds no rule file (*.yaml, *.yml; hidden ones are skipped)"
    assert one_line(replay(run_cli, "--rules", str(tmp_path)), USAGE) == f"cannot load rules: {reason}"
    serve = run_cli("serve", "--port", "18080", "--db", f"sqlite:///{tmp_path / 'a.db'}", "--rules", str(tmp_path))
    assert one_line(serve, USAGE) == f"cannot load rules: {reason}"
    for check in ("lint", "test"):
        out = run_cli("rules", check, str(tmp_path))
        assert out.code == FAILURE and f"error: {reason}" in out.out


def test_unreadable_or_empty_token_file(tmp_path: Path, run_cli: RunCli) -> None:
    """Read before anything else a listener needs (ingest would then ask for --kafka)."""
    empty = tmp_path / "empty-token"
    empty.write_text(" \n")
    reasons = {
        tmp_path / "nope": "cannot read token file {path}: No such file or directory",
        tmp_path: "cannot read token file {path}: Is a directory",  # a directory where a file is expected
        empty: "token file {path} is empty: write the token clients send in it",
    }
    binary = tmp_path / "binary-token"
    binary.write_bytes(b"\xff\xfe")
    reasons[binary] = "cannot read token file {path}: not UTF-8 text"
    for command in LISTENERS:
        for path, reason in reasons.items():
            line = one_line(run_cli(command, "--port", "1", "--token-file", str(path)), USAGE)
            assert line.startswith(reason.format(path=path)), line


@pytest.mark.parametrize("token", ["", " ", "\n\t"])
def test_an_empty_api_token_is_refused_like_an_empty_token_file(
    token: str, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It used to pass the non-loopback guard, and then refuse every client."""
    monkeypatch.setenv("AUDITWATCH_API_TOKEN", token)
    for command in LISTENERS:
        for host in ("0.0.0.0", "127.0.0.1"):
            line = one_line(run_cli(command, "--host", host, "--port", "1"), USAGE)
            assert line == "AUDITWATCH_API_TOKEN is empty: set it to the token clients send, or unset it"


def test_an_api_token_is_read_as_a_token_file_is() -> None:
    token = Settings(api_token="  s3cret-token\n").api_token
    assert token is not None and token.get_secret_value() == "s3cret-token"  # no client could send the spaces


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("foo://x", "unknown database URL scheme 'foo': use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB"),
        ("mysql://u:s3cret@db/x", "no driver installed for database URL scheme 'mysql' (No module named 'MySQLdb')"),
        ("not a url", "not a database URL: use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB"),
    ],
)
def test_bad_db_url(url: str, reason: str, tmp_path: Path, run_cli: RunCli) -> None:
    for args in (
        ["replay", str(SCENARIO), "--quiet", "--db", url],
        ["serve", "--port", "1", "--db", url],
        ["api", "--port", "1", "--db", url],
        ["demo", "--db", url],
    ):
        line = one_line(run_cli(*args), USAGE)
        assert line.startswith(reason) and "s3cret" not in line


def test_unreachable_postgresql(run_cli: RunCli) -> None:
    for args in (
        ["replay", str(SCENARIO), "--quiet", "--db", UNREACHABLE_PG],
        ["serve", "--port", "1", "--db", UNREACHABLE_PG],  # refused before listening, not in the server's startup
        ["api", "--port", "1", "--db", UNREACHABLE_PG],
        ["detect", "--kafka", "127.0.0.1:1", "--db", UNREACHABLE_PG],  # before it waits for Kafka
        ["demo", "--db", UNREACHABLE_PG],
    ):
        line = one_line(run_cli(*args), FAILURE)
        assert line.startswith("cannot open the alert store postgresql+psycopg://auditwatch:***@127.0.0.1:1/auditwatch")
        assert "Connection refused" in line and "s3cret" not in line


def test_an_output_that_cannot_be_written(tmp_path: Path, run_cli: RunCli) -> None:
    for path, reason in (
        (tmp_path / "no-dir" / "out.jsonl", "No such file or directory"),
        (tmp_path, "Is a directory"),
    ):
        line = one_line(run_cli("replay", str(SCENARIO), "--quiet", "--output", str(path)), USAGE)
        assert line == f"cannot write --output {path}: {reason}"


def _many_events(path: Path) -> Path:
    event = exec_event()
    path.write_bytes(b"".join(orjson.dumps(event | {"auditID": f"id-{n}"}) + b"\n" for n in range(3000)))
    return path


@pytest.mark.parametrize("command", [["convert"], ["replay", "--output", "-"]])
def test_output_to_a_pipe_closed_early_stops_quietly(command: list[str], tmp_path: Path) -> None:
    with subprocess.Popen([PYTHON, "-m", "auditwatch.cli", *command, str(_many_events(tmp_path / "a.log"))],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=clean_env()) as proc:  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(10)  # as `| head -c 10`: read a little, then go away
        proc.stdout.close()
        err = proc.stderr.read().decode()
    assert proc.returncode == FAILURE and "Traceback" not in err and "BrokenPipeError" not in err, err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
@pytest.mark.parametrize(
    ("command", "what"),
    [(["convert"], "to standard output"), (["replay", "--output", "-"], "--output -"),
     (["replay", "--output", "/dev/full"], "--output /dev/full")],
)  # fmt: skip
def test_output_that_fails_while_written_is_one_line_and_exit_1(command: list[str], what: str, tmp_path: Path) -> None:
    with Path("/dev/full").open("wb") as full:
        done = subprocess.run([PYTHON, "-m", "auditwatch.cli", *command, str(_many_events(tmp_path / "a.log"))],
                              stdout=full, stderr=subprocess.PIPE, cwd=ROOT, env=clean_env(), timeout=120, check=False)  # fmt: skip
    err = done.stderr.decode()
    assert done.returncode == FAILURE and "Traceback" not in err, err
    assert err.splitlines()[-1] == f"auditwatch: cannot write {what}: No space left on device"


@pytest.mark.parametrize("command", [["convert"], ["replay", "--output", "-"]])
def test_a_closed_stdout_is_one_line(command: list[str], run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", None)  # what Python gives a process started with fd 1 closed
    line = one_line(run_cli(*command, str(SCENARIO), "--quiet"), USAGE)
    assert line == "cannot write to standard output: it is closed"


def test_bad_settings_and_missing_kafka_are_usage_errors(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITWATCH_PORT", "eighty")
    assert one_line(run_cli("serve"), USAGE).startswith("bad setting: port: Input should be a valid integer")
    monkeypatch.delenv("AUDITWATCH_PORT")
    for port in ("70000", "-1"):  # a port out of range is a setting's error, not a traceback
        for command in ("serve", "api"):
            line = one_line(run_cli(command, "--port", port), USAGE)
            assert line == "bad setting: port: Value error, must be a TCP port, 1 to 65535"
    assert one_line(run_cli("ingest"), USAGE) == "ingest needs --kafka HOST:PORT (or AUDITWATCH_KAFKA_BOOTSTRAP)"
    assert one_line(run_cli("detect"), USAGE) == "detect needs --kafka HOST:PORT (or AUDITWATCH_KAFKA_BOOTSTRAP)"


@pytest.mark.parametrize("value", ["notahostport", "kafka:", "kafka:port", "kafka:0", "a:9092,b", "::1", "a:9092,"])
def test_a_kafka_address_without_a_port_is_a_usage_error(value: str, run_cli: RunCli) -> None:
    shown = value.split(",")[-1] if "," in value else value
    said = f"bad setting: kafka_bootstrap: Value error, {shown!r} is not HOST:PORT (e.g. kafka:9092; several: a comma "
    for command in (["ingest", "--kafka"], ["detect", "--kafka"], ["replay", str(SCENARIO), "--to-kafka"]):
        assert one_line(run_cli(*command, value), USAGE) == said + "between)", command


def test_kafka_addresses_with_ports_are_taken() -> None:
    for value in ("kafka:9092", "10.0.0.5:9092,10.0.0.6:9093", "[::1]:9092", "kafka-0.kafka.svc:9092"):
        assert Settings(kafka_bootstrap=value).kafka_bootstrap == value


def kafka_commands(tmp_path: Path) -> dict[str, list[str]]:
    """The commands that name the topics, Kafka unreachable (a name they took would fail later, not as usage)."""
    closed = "127.0.0.1:1"
    return {
        "ingest": ["ingest", "--kafka", closed],
        "detect": ["detect", "--kafka", closed, "--db", f"sqlite:///{tmp_path / 'a.db'}", "--kafka-wait", "0"],
        "replay": ["replay", str(SCENARIO), "--to-kafka", closed],
    }


@pytest.mark.parametrize("name", ["bad topic", "a/b", "audit\u00e9", "x" * 250, ".", "..", ""])
@pytest.mark.parametrize(("flag", "field"), [("--topic", "topic"), ("--dead-letter-topic", "dead_letter_topic")])
def test_a_topic_name_kafka_refuses_is_a_usage_error(
    name: str, flag: str, field: str, tmp_path: Path, run_cli: RunCli
) -> None:
    said = (
        f"bad setting: {field}: Value error, {name!r} is not a Kafka topic name: 1 to 249 of ASCII letters, digits, "
        "'.', '_' and '-', and not '.' or '..'"
    )
    for command, args in kafka_commands(tmp_path).items():
        assert one_line(run_cli(*args, flag, name), USAGE) == said, command


def test_the_dead_letter_topic_must_differ_from_the_audit_topic(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    for command, args in kafka_commands(tmp_path).items():
        for audit, dead in [("audit", "audit"), ("audit.v1", "audit_v1")]:  # Kafka keeps one of a.b and a_b
            said = f"bad setting: dead_letter_topic: Value error, must differ from the audit topic ({audit})"
            line = one_line(run_cli(*args, "--topic", audit, "--dead-letter-topic", dead), USAGE)
            assert line.startswith(said), (command, line)
        monkeypatch.setenv("AUDITWATCH_DEAD_LETTER_TOPIC", "k8s-audit")  # the variable, against the default topic
        line = one_line(run_cli(*args), USAGE)
        assert line.startswith("bad setting: dead_letter_topic: Value error, must differ from the audit topic "
                               "(k8s-audit)"), (command, line)  # fmt: skip
        monkeypatch.delenv("AUDITWATCH_DEAD_LETTER_TOPIC")


def test_an_empty_consumer_group_is_a_usage_error(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka refuses it (INVALID_GROUP_ID) only once detect has started and joins: said as lost Kafka, status 1."""
    said = ("bad setting: consumer_group: Value error, must not be empty: the consumer group that detect processes "
            "share, e.g. auditwatch-detect")  # fmt: skip
    assert one_line(run_cli(*kafka_commands(tmp_path)["detect"], "--group", ""), USAGE) == said
    monkeypatch.setenv("AUDITWATCH_CONSUMER_GROUP", "")
    assert one_line(run_cli(*kafka_commands(tmp_path)["detect"]), USAGE) == said


def test_topic_names_kafka_takes_are_taken() -> None:
    for name in ("a", "x" * 249, "audit.v1_dlq", "...", "-_-"):
        assert Settings(topic=name).topic == name
        assert Settings(dead_letter_topic=name).dead_letter_topic == name


@pytest.mark.parametrize("command", [[], ["replay"], ["convert"]])
def test_help_documents_the_exit_statuses(command: list[str], run_cli: RunCli) -> None:
    out = " ".join(run_cli(*command, "--help").out.split())
    assert "exit status: 0 done; 1 failure while running" in out
    assert "2 usage or configuration error" in out and "3 input problem" in out
