"""`auditwatch replay` stopped half-way: by Ctrl-C or SIGTERM (what was found until then is stored, the summary says
where it stopped, exit status 130 or 143) and by a closed output pipe (what was found is stored too); a replay of it
all again completes the store without a duplicate. `replay --to-kafka` stopped counts what Kafka acknowledged;
`convert` stopped has written whole lines, and says how many and where it stopped."""

from __future__ import annotations

import array
import asyncio
import fcntl
import io
import os
import signal
import subprocess
import termios
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import pytest

from api.store import AlertStore
from auditwatch import replay as replay_module
from auditwatch.convert import convert
from auditwatch.interrupts import Terminated, cancelled_by_signals
from auditwatch.publish import PUBLISH_BATCH, publish
from auditwatch.replay import Progress, ReplayStats, Transform, format_summary, replay
from auditwatch.settings import Settings
from detectors.events import AuditEvent
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from ingest.archives.records import BATCH_LINES
from tests.support.cli import RunCli, clean_env
from tests.support.events import lease_event
from tests.support.paths import PYTHON, ROOT, SCENARIO
from tests.support.services import kafka_bootstrap, topic_records

ALERTS = 6  # the scenario's: three at line 35, two at line 41, one at line 47
STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal, as a shell reports it
STOPPED = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "stopped by SIGTERM"}


def stop_at(line: int) -> Transform:
    """A transform that is Ctrl-C pressed when the event of `line` comes to detection."""

    def keep(event: AuditEvent) -> AuditEvent:
        if event.origin.endswith(f":{line}"):
            raise KeyboardInterrupt
        return event

    return keep


def interrupted_replay(log: Path, store: AlertStore, **options: Any) -> ReplayStats:
    try:
        return replay([str(log)], Pipeline(load_rules(["builtin"])), store=store, **options)
    except KeyboardInterrupt:  # pytest would stop the session
        pytest.fail("Ctrl-C ended the replay without storing what it had found")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AlertStore]:
    alert_store = AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}")
    alert_store.migrate()
    yield alert_store
    alert_store.close()


def test_ctrl_c_stores_what_was_found_and_says_where_it_stopped(tmp_path: Path, store: AlertStore) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(SCENARIO.read_bytes())
    stats = interrupted_replay(log, store, transform=stop_at(45))
    assert stats.interrupted == f"before {log}:45"
    assert stats.events == 44  # the events that went through detection, one a line
    assert stats.alerts == stats.new_alerts == store.count_alerts() == 5  # lines 35 and 41's, none after
    again = replay([str(log)], Pipeline(load_rules(["builtin"])), store=store)
    assert again.interrupted is None
    assert (again.alerts, again.new_alerts, store.count_alerts()) == (ALERTS, 1, ALERTS)


def test_ctrl_c_between_batches_names_the_last_line_read(
    tmp_path: Path, store: AlertStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(SCENARIO.read_bytes())
    batches = 0

    def progress(_current: str) -> None:  # called after each batch of 16 lines is detected
        nonlocal batches
        batches += 1
        if batches == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(replay_module, "progress_of", lambda _display, _stats: progress)
    display = Progress(io.StringIO(), enabled=False)
    stats = interrupted_replay(log, store, progress=display)
    assert stats.interrupted == f"after {log}:48"
    assert stats.events == 48
    assert store.count_alerts() == ALERTS  # the last at line 47


def test_a_closed_output_pipe_stores_what_was_found(tmp_path: Path, store: AlertStore) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(SCENARIO.read_bytes())
    emitted = 0

    def emit(_alert: object) -> None:
        nonlocal emitted
        emitted += 1
        if emitted == 4:  # the first alert of line 41: `| head -3` has gone
            raise BrokenPipeError

    with pytest.raises(BrokenPipeError):
        replay([str(log)], Pipeline(load_rules(["builtin"])), store=store, emit=emit)
    assert store.count_alerts() == 5  # line 41's alerts were found before the write that failed


def signalled(
    args: list[str], sig: signal.Signals, ready: Callable[[], bool], *, wait_s: float = 3
) -> tuple[int, bytes, str]:
    """`python -m auditwatch.cli ARGS`, sent `sig` `wait_s` seconds after `ready()` (polled for 60 s at most):
    its exit status, stdout and stderr."""
    # Ctrl-C's default action, whatever this test inherited: a shell ignores SIGINT in what it starts in the
    # background (`.ci/run ... &`), and Python then leaves it ignored
    with subprocess.Popen([PYTHON, "-m", "auditwatch.cli", *args], cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as proc:  # fmt: skip
        deadline = time.monotonic() + 60
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(wait_s)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err.decode()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("into", ["--db", "--output"])
def test_a_signal_on_the_command_stores_what_was_found_and_exits_with_the_summary(
    tmp_path: Path, sig: signal.Signals, into: str
) -> None:
    """A real process and a real signal, in a replay paced at real time (the scenario spans 52 s of events): Ctrl-C,
    and SIGTERM (what `kill`, systemd, Kubernetes and `timeout` send) alike, into the store or to --output."""
    db, output = tmp_path / "alerts.db", tmp_path / "alerts.jsonl"
    target = ["--db", f"sqlite:///{db}"] if into == "--db" else ["--output", str(output)]
    args = ["replay", str(SCENARIO), *target, "--speed", "1"]
    # the store, or the output, is opened first
    status, out, text = signalled(args, sig, (db if into == "--db" else output).exists)
    assert status == STATUS[sig], text
    assert "Traceback" not in text and out == b""
    stopped = f"{STOPPED[sig]} before {SCENARIO}:"
    (where,) = [line for line in text.splitlines() if line.startswith(stopped)]
    line = int(where.removeprefix(stopped).split(":")[0])
    assert where.endswith(": the counts above are of what was detected until then")
    assert f"replayed {line - 1} events from 1 file(s)" in text
    expected = sum(n for at, n in ((35, 3), (41, 2), (47, 1)) if at < line)
    if into == "--output":
        assert f"alerts: {expected}\n" in text
        assert [orjson.loads(a)["origin"] for a in output.read_bytes().splitlines()] == [
            f"{SCENARIO}:{at}" for at, n in ((35, 3), (41, 2), (47, 1)) if at < line for _ in range(n)
        ]
        return
    store = AlertStore(f"sqlite:///{db}")
    try:
        assert store.count_alerts() == expected
        assert f"alerts: {expected} ({expected} new in the store)" in text
    finally:
        store.close()


def test_ctrl_c_publishing_to_kafka_counts_what_kafka_acknowledged(tmp_path: Path) -> None:
    """`replay --to-kafka` cancelled as asyncio.run cancels it on Ctrl-C, once Kafka has acknowledged two
    batches: the summary counts those, and names the line after which it stopped; the topic holds them."""
    bootstrap = kafka_bootstrap()
    topic = f"replay-interrupt-{uuid.uuid4().hex[:8]}"
    settings = Settings(kafka_bootstrap=bootstrap, topic=topic, dead_letter_topic=f"{topic}-dlq", partitions=1)
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(orjson.dumps(lease_event() | {"auditID": f"id-{n}"}) + b"\n" for n in range(10_000)))
    stats = ReplayStats()

    async def stopped_after_two_batches() -> None:
        task = asyncio.create_task(publish([str(log)], settings, stats=stats))
        deadline = time.monotonic() + 60
        while stats.events < 3 * PUBLISH_BATCH and not task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0)  # runs while the task awaits Kafka's acknowledgement of a batch
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stopped_after_two_batches())
    acknowledged = 2 * PUBLISH_BATCH
    assert (stats.events, stats.lines, stats.interrupted) == (acknowledged, acknowledged, f"after {log}:{acknowledged}")
    summary = format_summary(stats, stored=False, published_to=topic)
    assert summary.endswith(
        f"interrupted (Ctrl-C) after {log}:{acknowledged}: the counts above are of what Kafka acknowledged until then"
    )
    ids = {orjson.loads(r.value)["auditID"] for r in topic_records(bootstrap, topic, expect_at_least=acknowledged)}
    assert {f"id-{n}" for n in range(acknowledged)} <= ids


def drained(writer: IO[bytes]) -> Callable[[], bool]:
    """Whether the reader of a FIFO has taken all that was written to it."""

    def check() -> bool:
        unread = array.array("i", [0])
        fcntl.ioctl(writer.fileno(), termios.FIONREAD, unread)
        return unread[0] == 0

    return check


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_publishing_to_kafka_reports_what_kafka_acknowledged(tmp_path: Path, sig: signal.Signals) -> None:
    """`replay --to-kafka` of a FIFO given by name, which it reads as it is written: one Ctrl-C, or SIGTERM, while
    it waits for more lines (in a read, not at an await), once Kafka has acknowledged two batches, stops it; the
    summary counts those and names the line after which it stopped."""
    bootstrap = kafka_bootstrap()
    topic = f"replay-{sig.name.lower()}-{uuid.uuid4().hex[:8]}"
    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    acknowledged = 2 * PUBLISH_BATCH  # and 500 lines more, which wait for a third batch
    data = b"".join(orjson.dumps(lease_event() | {"auditID": f"id-{n}"}) + b"\n" for n in range(acknowledged + 500))
    args = ["replay", str(fifo), "--to-kafka", bootstrap, "--topic", topic, "--dead-letter-topic", f"{topic}-dlq",
            "--partitions", "1"]  # fmt: skip
    with subprocess.Popen([PYTHON, "-m", "auditwatch.cli", *args], cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in `signalled`
                          ) as proc, open(fifo, "wb") as writer:  # fmt: skip
        writer.write(data)
        writer.flush()
        topic_records(bootstrap, topic, expect_at_least=acknowledged, timeout_s=60)
        deadline = time.monotonic() + 60
        while not drained(writer)() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # the last lines read, it waits for more
        proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=30)  # the FIFO still open: only the signal can end the read
        except subprocess.TimeoutExpired:
            pytest.fail(f"one {sig.name} did not stop replay --to-kafka reading a FIFO")
    text = err.decode()
    assert proc.returncode == STATUS[sig], text
    assert "Traceback" not in text and out == b""
    assert f"published to {bootstrap} {topic} {acknowledged:,} events from 1 file(s), {acknowledged:,} lines" in text
    assert text.rstrip().endswith(
        f"{STOPPED[sig]} after {fifo}:{acknowledged}: the counts above are of what Kafka acknowledged until then"
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_convert_with_the_summary_after_whole_lines(tmp_path: Path, sig: signal.Signals) -> None:
    """`convert` of a FIFO given by name, stopped while it waits for more lines: what it wrote is whole lines
    (events larger than an output buffer among them), and the summary counts them and says where it stopped."""
    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    events = [  # lines are read BATCH_LINES at a time: two batches, so that none waits for more lines
        lease_event() | {"auditID": f"id-{n}", "annotations": {"note": "x" * (n % 3) * 40_000}}
        for n in range(2 * BATCH_LINES)
    ]
    output = tmp_path / "events.jsonl"
    args = [PYTHON, "-m", "auditwatch.cli", "convert", str(fifo)]
    with output.open("wb") as stdout, subprocess.Popen(
        args, cwd=ROOT, env=clean_env(), stdout=stdout, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in `signalled`
    ) as proc, open(fifo, "wb") as writer:  # fmt: skip
        writer.write(b"".join(orjson.dumps(event) + b"\n" for event in events))
        writer.flush()
        deadline = time.monotonic() + 60
        while not drained(writer)() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # the last lines converted, it waits for more
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == STATUS[sig], text
    assert "Traceback" not in text
    assert [orjson.loads(line)["auditID"] for line in output.read_bytes().splitlines()] == [
        e["auditID"] for e in events
    ]
    assert f"converted {len(events)} events from 1 file(s), {len(events)} lines" in text
    assert text.rstrip().endswith(
        f"{STOPPED[sig]} after {fifo}:{len(events)}: the counts above are of what was written until then"
    )


def test_convert_stopped_mid_record_counts_the_lines_written_whole(tmp_path: Path) -> None:
    """Stopped while a record of many events is converted (an EventList on one line), `convert` has written whole
    lines only, the events it counts, and names the first event that it did not write."""
    log = tmp_path / "audit.log"
    items = [lease_event() | {"auditID": f"id-{n}", "annotations": {"note": "x" * 10_000}} for n in range(300)]
    log.write_bytes(orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}) + b"\n")
    out = io.BytesIO()

    def stop_at_200(event: AuditEvent) -> AuditEvent:
        if event.raw["auditID"] == "id-200":
            raise Terminated
        return event

    try:
        stats = convert([str(log)], out, transform=stop_at_200)
    except KeyboardInterrupt:  # pytest would stop the session
        pytest.fail("SIGTERM ended the conversion without saying where it stopped")
    written = [orjson.loads(line)["auditID"] for line in out.getvalue().splitlines()]
    assert 0 < len(written) < 200 and written == [f"id-{n}" for n in range(len(written))]
    assert (stats.events, stats.interrupted, stats.stop_signal) == (
        len(written),
        f"before {log}:1#items[{len(written)}]",
        15,
    )


def test_the_commands_put_back_the_sigterm_handler_they_found(tmp_path: Path, run_cli: RunCli) -> None:
    """SIGTERM is an interrupt only while `replay` or `convert` runs: `replay()` called as a library (bench/), or
    anything after the command, keeps the handler it had."""

    def mine(_signum: int, _frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        assert run_cli("convert", str(SCENARIO), "--quiet").code == 0
        assert signal.getsignal(signal.SIGTERM) is mine
        assert run_cli("replay", str(SCENARIO), "--quiet", "--output", str(tmp_path / "alerts.jsonl")).code == 0
        assert signal.getsignal(signal.SIGTERM) is mine
        replay([str(SCENARIO)], Pipeline(load_rules(["builtin"])))
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_ctrl_c_ignored_stays_ignored_while_publishing() -> None:
    """A shell's background job starts with Ctrl-C ignored: the coroutine's handlers leave it so (SIGTERM is taken
    over), and every handler is put back after."""

    async def handlers() -> tuple[Any, Any]:
        return signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sigint, sigterm = asyncio.run(cancelled_by_signals(handlers()))
        assert sigint == signal.SIG_IGN and callable(sigterm)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN and signal.getsignal(signal.SIGTERM) == before[1]
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as Python starts: asyncio.run's, then ours
        sigint, _ = asyncio.run(cancelled_by_signals(handlers()))
        assert callable(sigint) and getattr(sigint, "func", None) is None  # not asyncio.run's (a partial)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before[0])
