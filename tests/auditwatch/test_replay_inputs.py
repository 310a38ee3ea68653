"""`replay` and `convert` on inputs that are missing, unreadable or empty, on poison lines, and on a store that
fails: exit status 3 (input problem) or 1 (store failure) with a one-line reason; poison lines are rejected
with file:line while every good line is still detected (exit 0)."""

from __future__ import annotations

import functools
import gzip
import io
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.store import AlertStore
from detectors.alerts import Alert
from detectors.events import AuditEvent
from ingest.archives.files import MAX_GZIP_LAYERS
from tests.support.cli import CliRun, RunCli, auditwatch_process, clean_env
from tests.support.events import exec_event
from tests.support.paths import PYTHON, ROOT, SCENARIO

INPUT_PROBLEM = 3
SCENARIO_EVENTS = 59
STORE_FAILURE = 1


def reason_of(result: CliRun) -> str:
    """The one line a refused command prints (run with --quiet: nothing else goes to stderr)."""
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


def replay_args(command: str, db: Path) -> list[str]:
    return ["--quiet", "--db", f"sqlite:///{db}"] if command == "replay" else ["--quiet"]


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.jsonl"
    path.write_bytes(SCENARIO.read_bytes())
    return path


@pytest.mark.parametrize("command", ["replay", "convert"])
def test_a_missing_input_stops_the_command_before_it_reads_anything(
    command: str, tmp_path: Path, good: Path, run_cli: RunCli
) -> None:
    gone = tmp_path / "audit.log"
    gone.symlink_to(tmp_path / "audit-rotated-away.log")
    loop = tmp_path / "loop.log"
    loop.symlink_to(loop)
    reasons = {
        str(tmp_path / "nope.jsonl"): "No such file or directory",
        str(gone): "No such file or directory (a broken symbolic link)",
        f"{good}/audit.log": "Not a directory",  # a file where a directory is expected
        str(loop): "Too many levels of symbolic links (a broken symbolic link)",
    }
    db = tmp_path / "alerts.db"
    for path, reason in reasons.items():
        result = run_cli(command, str(good), path, *replay_args(command, db))
        assert result.code == INPUT_PROBLEM, result.err
        assert reason_of(result) == f"auditwatch: cannot read input {path}: {reason}"
        assert result.out == ""
    assert not db.exists()  # the good file was not replayed either: no half-done replay to clean up


@pytest.mark.parametrize("command", ["replay", "convert"])
def test_a_broken_link_inside_an_input_directory_stops_the_command(
    command: str, tmp_path: Path, good: Path, run_cli: RunCli
) -> None:
    """A directory is read file by file: a link in it to a log rotated away is as missing as one given by name,
    not a file passed over without a word."""
    folder = tmp_path / "logs"
    (folder / "node-2").mkdir(parents=True)
    (folder / "audit-2026-11-19T10-00-00.000.log").write_bytes(SCENARIO.read_bytes())
    gone = folder / "node-2" / "audit.log"
    gone.symlink_to(tmp_path / "elsewhere" / "audit.log")
    loop = tmp_path / "loops" / "audit.log"
    loop.parent.mkdir()
    loop.symlink_to(loop)
    db = tmp_path / "alerts.db"
    for top, link, reason in (
        (folder, gone, "No such file or directory"),
        (loop.parent, loop, "Too many levels of symbolic links"),
    ):
        result = run_cli(command, str(good), str(top), *replay_args(command, db))
        assert result.code == INPUT_PROBLEM, result.err
        assert reason_of(result) == f"auditwatch: cannot read input {link}: {reason} (a broken symbolic link)"
        assert result.out == ""
    assert not db.exists()


@pytest.mark.parametrize("command", ["replay", "convert"])
def test_fifos_sockets_and_devices_in_a_directory_are_named_and_counted(command: str, tmp_path: Path) -> None:
    """A FIFO, a socket or a device in an input directory is no archive: it is not opened (a FIFO would wait for a
    writer: this process would not end), and not passed over without a word either: a warning line names it, the
    summary counts it, and the files beside it are read (exit status 0)."""
    folder = tmp_path / "logs"
    (folder / "node-2").mkdir(parents=True)
    (folder / "audit.log").write_bytes(SCENARIO.read_bytes())
    os.mkfifo(folder / "audit.fifo")
    os.mkfifo(folder / "node-2" / "audit.fifo")
    (folder / "null").symlink_to(os.devnull)
    agent = socket.socket(socket.AF_UNIX)
    try:
        agent.bind(str(folder / "agent.sock"))
        result = auditwatch_process(command, str(folder), *replay_args(command, tmp_path / "alerts.db")[1:])
    finally:
        agent.close()
    assert result.code == 0, result.err
    warning, *summary = result.err.splitlines()
    assert warning == (
        "auditwatch: warning: 4 FIFO(s), socket(s) or device(s) in input directories not read (give one by name to "
        f"read it): {folder}/agent.sock (a socket), {folder}/audit.fifo (a FIFO), {folder}/node-2/audit.fifo (a FIFO)"
        " and 1 more"
    )
    assert "FIFOs, sockets and devices in directories not read: 4" in summary
    assert f"{'replayed' if command == 'replay' else 'converted'} {SCENARIO_EVENTS} events from 1 file(s)" in summary[0]


@pytest.mark.parametrize("how", ["/dev/fd", "mkfifo"])
def test_a_pipe_given_by_name_is_read(how: str, tmp_path: Path) -> None:
    """A pipe given by name is input, as `replay <(zcat audit.log.gz)` gives one (/dev/fd/N), or a FIFO."""
    data = SCENARIO.read_bytes()
    args = [PYTHON, "-m", "auditwatch.cli", "convert", "--quiet"]
    if how == "/dev/fd":
        read_end, write_end = os.pipe()
        proc = subprocess.Popen([*args, f"/dev/fd/{read_end}"], cwd=ROOT, env=clean_env(), pass_fds=(read_end,),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        os.close(read_end)
        writer = functools.partial(os.fdopen, write_end, "wb")
    else:
        fifo = tmp_path / "audit.fifo"
        os.mkfifo(fifo)
        proc = subprocess.Popen([*args, str(fifo)], cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)  # fmt: skip
        writer = functools.partial(fifo.open, "wb")  # its open waits for the command to open it

    def write() -> None:
        with writer() as pipe:
            pipe.write(data)

    threading.Thread(target=write, daemon=True).start()  # the wait is bounded by the command's
    with proc:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert [orjson.loads(line)["auditID"] for line in out.splitlines()] == [
        orjson.loads(line)["auditID"] for line in data.splitlines()
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file and directory whatever its mode")
@pytest.mark.parametrize("command", ["replay", "convert"])
def test_an_input_without_read_permission_stops_the_command(
    command: str, tmp_path: Path, good: Path, run_cli: RunCli
) -> None:
    locked = tmp_path / "locked.jsonl"
    locked.write_bytes(SCENARIO.read_bytes())
    locked.chmod(0)
    folder = tmp_path / "logs"
    (folder / "closed").mkdir(parents=True)
    (folder / "closed").chmod(0)
    try:
        for path, named in ((locked, locked), (folder, folder / "closed")):
            result = run_cli(command, str(good), str(path), *replay_args(command, tmp_path / "a.db"))
            assert result.code == INPUT_PROBLEM
            assert reason_of(result) == f"auditwatch: cannot read input {named}: Permission denied"
    finally:
        (folder / "closed").chmod(0o755)


@pytest.mark.parametrize("command", ["replay", "convert"])
def test_inputs_without_a_single_event_exit_3(command: str, tmp_path: Path, run_cli: RunCli) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    folder = tmp_path / "no-files"
    folder.mkdir()
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(b'{not json\n0\n"text"\n')
    cases = {
        str(empty): "(0 lines)",
        str(folder): "(0 lines)",
        str(junk): "(3 lines, 3 rejected)",
    }
    for path, counts in cases.items():
        result = run_cli(command, path, *replay_args(command, tmp_path / "a.db"))
        assert result.code == INPUT_PROBLEM
        assert reason_of(result) == f"auditwatch: no audit event read from the inputs {counts}"
    # a forced format that reads nothing: the summary says why, the last line says what it means
    result = run_cli(command, str(SCENARIO), "--format", "gke", *(["--output", "-"] if command == "replay" else []))
    assert result.code == INPUT_PROBLEM and "Traceback" not in result.err
    assert f"{SCENARIO}:1: LogEntry without protoPayload" in result.err
    assert result.err.splitlines()[-1] == "auditwatch: no audit event read from the inputs (59 lines, 59 rejected)"


def test_empty_stdin_exits_3(monkeypatch: pytest.MonkeyPatch, run_cli: RunCli) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    result = run_cli("replay", "-", "--output", "-", "--quiet")
    assert result.code == INPUT_PROBLEM
    assert reason_of(result) == "auditwatch: no audit event read from the inputs (0 lines)"


@pytest.mark.parametrize("command", ["replay", "convert"])
def test_a_closed_stdin_stops_the_command(
    command: str, tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", None)  # what Python gives a process started with fd 0 closed
    result = run_cli(command, "-", *replay_args(command, tmp_path / "a.db"))
    assert result.code == INPUT_PROBLEM and "Traceback" not in result.err
    assert reason_of(result) == "auditwatch: cannot read input -: standard input is closed"


@pytest.mark.parametrize("command", ["replay", "convert"])
def test_stdin_given_twice_stops_the_command_before_it_reads(
    command: str, tmp_path: Path, good: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first `-` reads standard input to its end and closes it: a second has nothing to read (it was a
    traceback)."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(SCENARIO.read_bytes())))
    result = run_cli(command, "-", str(good), "-", *replay_args(command, tmp_path / "a.db"))
    assert result.code == INPUT_PROBLEM
    assert (
        reason_of(result)
        == "auditwatch: cannot read input -: standard input is given more than once, and can be read once"
    )
    assert result.out == "" and not (tmp_path / "a.db").exists()


def attack(n: int) -> bytes:
    """A line the apiserver could have written: an exec into a pod (one pod-exec-attach alert)."""
    event = exec_event()
    event["auditID"] = f"00000000-0000-4000-8000-{n:012d}"
    return orjson.dumps(event)


def poisoned_file(path: Path, poison: list[bytes]) -> list[int]:
    """Good attack lines with one poison line between each two; returns the good lines' numbers."""
    lines: list[bytes] = [attack(0)]
    for i, bad in enumerate(poison, start=1):
        lines += [bad, attack(i)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return list(range(1, len(lines) + 1, 2))


def assert_every_good_line_alerted(result: CliRun, path: Path, good_lines: list[int], db: Path) -> None:
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    origins = sorted(
        int(alert["origin"].rsplit(":", 1)[1])
        for alert in map(orjson.loads, result.out.splitlines())
        if alert["rule_id"] == "pod-exec-attach"
    )
    assert origins == good_lines
    with sqlite3.connect(db) as conn:
        stored = conn.execute("select count(*) from alerts where rule_id = 'pod-exec-attach'").fetchone()
    assert stored == (len(good_lines),)


def test_poison_lines_are_rejected_with_file_and_line_and_every_good_line_alerts(
    tmp_path: Path, run_cli: RunCli
) -> None:
    poison = [
        b"{not json",
        b"0",
        b'"an event"',
        b"null",
        b'{"kind":"Event"}',  # no auditID, stage, verb...
        b'{"kind":"Pod","apiVersion":"v1"}',
        b'{"kind":"EventList","items":7}',
        b"\xff\xfe not UTF-8",
        attack(99)[:60],  # a line cut short
    ]
    path = tmp_path / "poisoned.jsonl"
    good_lines = poisoned_file(path, poison)
    db = tmp_path / "a.db"
    result = run_cli("replay", str(path), "--output", "-", "--db", f"sqlite:///{db}")
    assert_every_good_line_alerted(result, path, good_lines, db)
    for n in range(2, 2 * len(poison) + 1, 2):
        assert f"  {path}:{n}: " in result.err
    assert f"rejected: {len(poison)} (the first 100 per 50,000 events kept in the quarantine table)" in result.err


def test_a_log_gzipped_twice_is_read_as_the_log_it_is(tmp_path: Path, run_cli: RunCli) -> None:
    """`gzip audit.log.gz` once more (or a tool that compresses what it ships): inflated again, not taken for
    Firehose data; past MAX_GZIP_LAYERS, the file is one reject that names it."""
    log = b"".join(attack(n) + b"\n" for n in range(5))
    twice = tmp_path / "audit.log.gz.gz"
    twice.write_bytes(gzip.compress(gzip.compress(log)))
    db = tmp_path / "a.db"
    result = run_cli("replay", str(twice), "--output", "-", "--db", f"sqlite:///{db}")
    assert_every_good_line_alerted(result, twice, [1, 2, 3, 4, 5], db)
    deep = tmp_path / "audit.log.gz4"
    deep.write_bytes(functools.reduce(lambda data, _: gzip.compress(data), range(MAX_GZIP_LAYERS + 1), log))
    result = run_cli("replay", str(deep), "--output", "-", "--db", f"sqlite:///{db}")
    assert result.code == INPUT_PROBLEM and "Traceback" not in result.err
    assert f"{deep}:1: cannot read: gzip inside gzip more than {MAX_GZIP_LAYERS} layers deep" in result.err


class CrashOn:
    """A detector that raises on one auditID: what a detector bug does on an input nobody foresaw."""

    id = "crash-on-one-event"
    stages = None
    resources = None

    def __init__(self, audit_id: str) -> None:
        self.audit_id = audit_id

    def detect(self, event: AuditEvent) -> list[Alert]:
        if event.raw.get("auditID") == self.audit_id:
            raise TypeError("unhashable type: 'list'")
        return []


@pytest.fixture
def crashing_detector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import auditwatch.commands.archives as archives
    from detectors.pipeline import Pipeline

    real = archives.load_pipeline

    def with_crash(*args: Any) -> Pipeline:
        pipeline: Pipeline = real(*args)
        return Pipeline([*pipeline.detectors, CrashOn("00000000-0000-4000-8000-000000000077")])

    monkeypatch.setattr(archives, "load_pipeline", with_crash)
    yield


@pytest.mark.usefixtures("crashing_detector")
def test_a_line_that_crashes_detection_is_rejected_and_the_replay_goes_on(tmp_path: Path, run_cli: RunCli) -> None:
    crash = exec_event()
    crash["auditID"] = "00000000-0000-4000-8000-000000000077"
    unhashable = exec_event()
    unhashable["objectRef"]["resource"] = ["pods"]  # TypeError: unhashable type in candidate selection
    overflow = exec_event()
    overflow["stageTimestamp"] = "0001-01-01T00:00:00+14:00"  # OverflowError: before year 1 in UTC
    path = tmp_path / "crashing.jsonl"
    good_lines = poisoned_file(path, [orjson.dumps(crash), orjson.dumps(unhashable), orjson.dumps(overflow)])
    db = tmp_path / "a.db"
    result = run_cli("replay", str(path), "--output", "-", "--db", f"sqlite:///{db}")
    # line 2 is a valid event one detector crashes on: it is quarantined, and the other detectors' alerts on it
    # are kept (nothing lost); lines 4 and 6 are refused by validation
    assert_every_good_line_alerted(result, path, sorted([*good_lines, 2]), db)
    for n in (2, 4, 6):
        assert f"{path}:{n}: " in result.err


@pytest.fixture
def read_only_url(store: AlertStore) -> str:
    """The `store` fixture's database (SQLite, then PostgreSQL), migrated, through a connection that cannot
    write: every write of the replay fails in the database, as on a full disk or a revoked grant."""
    if store.url.startswith("sqlite"):
        return f"sqlite:///file:{store.url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    return f"{store.url}?options=-c%20default_transaction_read_only%3Don"


def test_a_store_failure_during_replay_db_is_one_line_and_exit_1(read_only_url: str, run_cli: RunCli) -> None:
    result = run_cli("replay", str(SCENARIO), "--db", read_only_url, "--quiet")
    assert result.code == STORE_FAILURE
    line = reason_of(result)
    assert line.startswith("auditwatch: replay stopped at") and "database error" in line  # the write failed
    assert "cannot open" not in line
    assert "readonly" in line or "read-only" in line
