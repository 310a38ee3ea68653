"""`auditwatch replay` stopped half-way: by Ctrl-C (what was found until then is stored, the summary says where it
stopped, exit status 130) and by a closed output pipe (what was found is stored too); a replay of it all again
completes the store without a duplicate. `replay --to-kafka` stopped by Ctrl-C counts what Kafka acknowledged."""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.store import AlertStore
from auditwatch import replay as replay_module
from auditwatch.publish import PUBLISH_BATCH, publish
from auditwatch.replay import Progress, ReplayStats, Transform, format_summary, replay
from auditwatch.settings import Settings
from detectors.events import AuditEvent
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.cli import clean_env
from tests.support.events import lease_event
from tests.support.paths import PYTHON, ROOT, SCENARIO
from tests.support.services import kafka_bootstrap, topic_records

ALERTS = 6  # the scenario's: three at line 35, two at line 41, one at line 47
INTERRUPTED = 130


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


def test_ctrl_c_on_the_command_exits_130_with_the_summary(tmp_path: Path) -> None:
    """A real process and a real SIGINT, in a replay paced at real time (the scenario spans 52 s of events)."""
    db = tmp_path / "alerts.db"
    args = [PYTHON, "-m", "auditwatch.cli", "replay", str(SCENARIO), "--db", f"sqlite:///{db}", "--speed", "1"]
    # Ctrl-C's default action, whatever this test inherited: a shell ignores SIGINT in what it starts in the
    # background (`.ci/run ... &`), and Python then leaves it ignored
    with subprocess.Popen(args, cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as proc:  # fmt: skip
        deadline = time.monotonic() + 60
        while not db.exists() and proc.poll() is None and time.monotonic() < deadline:  # the store opens first
            time.sleep(0.1)
        time.sleep(3)  # into the paced replay
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == INTERRUPTED, text
    assert "Traceback" not in text and out == b""
    (where,) = [line for line in text.splitlines() if line.startswith("interrupted (Ctrl-C) before ")]
    line = int(where.removeprefix(f"interrupted (Ctrl-C) before {SCENARIO}:").split(":")[0])
    assert where.endswith(": the counts above are of what was detected until then")
    assert f"replayed {line - 1} events from 1 file(s)" in text
    store = AlertStore(f"sqlite:///{db}")
    try:
        expected = sum(n for at, n in ((35, 3), (41, 2), (47, 1)) if at < line)
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
