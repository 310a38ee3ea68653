"""Log lines: text for people, one JSON object for shippers, structured fields in both; nothing forged."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import sys
from datetime import datetime

import pytest
from aiokafka.client import AIOKafkaClient

from auditwatch.logs import JsonFormatter, RepeatLimit, TextFormatter, alert_fields, configure_logging, log_alerts
from detectors.events import AuditEvent
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.events import exec_event
from tests.support.processes import free_port


def record(msg: str, level: int = logging.INFO, **fields: object) -> logging.LogRecord:
    rec = logging.getLogger("auditwatch.test").makeRecord("auditwatch.test", level, __file__, 1, msg, (), None)
    rec.__dict__.update(fields)
    return rec


def test_json_lines_carry_ts_level_logger_msg_and_the_fields() -> None:
    line = JsonFormatter().format(record("batch", events=400, rejected=0, alerts=6, ms=41.2, partitions=[0, 3]))
    doc = json.loads(line)
    assert "\n" not in line
    assert doc.pop("ts").endswith("Z") and doc == {
        "level": "INFO", "logger": "auditwatch.test", "msg": "batch",
        "events": 400, "rejected": 0, "alerts": 6, "ms": 41.2, "partitions": [0, 3],
    }  # fmt: skip
    datetime.fromisoformat(json.loads(line)["ts"].replace("Z", "+00:00"))


def test_a_traceback_stays_inside_its_json_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(rec)
    assert len(line.splitlines()) == 1 and "RuntimeError: boom" in json.loads(line)["exc"]


def test_text_lines_show_fields_as_key_value_and_cannot_be_forged() -> None:
    text = TextFormatter().format(record("alert", level=logging.WARNING, rule_id="pod-exec", principal="bob"))
    assert text.endswith(" WARNING auditwatch.test: alert rule_id=pod-exec principal=bob")
    forged = TextFormatter().format(record("alert", principal="eve\n2026-01-01 INFO x: fake", ns=""))
    assert len(forged.splitlines()) == 1
    assert forged.endswith(' principal="eve\\n2026-01-01 INFO x: fake" ns=""')


def test_an_alert_line_has_its_redacted_who_what_and_where() -> None:
    event = exec_event()
    alerts = Pipeline(load_rules(["builtin"])).process(AuditEvent(event, origin="t:1"))
    assert alerts
    fields = alert_fields(alerts[0])
    assert set(fields) == {"rule_id", "severity", "principal", "namespace", "verb", "resource", "alert_id"}
    assert fields["principal"] == event["user"]["username"] and fields["alert_id"] == alerts[0].id
    logger = logging.getLogger("auditwatch.test.alerts")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            records.append(rec)

    logger.addHandler(Keep())
    logger.propagate = False  # this test's records only
    log_alerts(logger, alerts)
    assert [r.getMessage() for r in records] == ["alert"] * len(alerts)
    assert all(r.levelno == logging.WARNING for r in records)


def library_record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(name, level, __file__, 1, msg, args, None)


def test_a_kafka_client_line_passes_once_a_minute_then_says_how_many_were_held_back() -> None:
    now = [0.0]
    limit = RepeatLimit(every_s=60, clock=lambda: now[0])
    unable = "Unable connect to node with id %s: [Errno 111] Connect call failed ('127.0.0.1', %d)"
    passed = []
    for i in range(100):  # ten a second for ten seconds, as aiokafka retries: the node id and port vary
        now[0] = i / 10
        rec = library_record("aiokafka.conn", unable, i % 3, 9092 + i)
        if limit.filter(rec):
            passed.append(rec)
    assert len(passed) == 1 and not hasattr(passed[0], "suppressed")
    assert limit.filter(library_record("aiokafka.cluster", "Topic %s not found in cluster metadata", "k8s-audit"))
    assert limit.filter(library_record("aiokafka.conn", unable, 1, 9092, level=logging.WARNING))  # another level
    now[0] = 70.0
    again = library_record("aiokafka.conn", unable, 2, 9092)
    assert limit.filter(again) and again.__dict__["suppressed"] == 99
    assert "suppressed=99" in TextFormatter().format(again)
    now[0] = 71.0
    assert not limit.filter(library_record("aiokafka.conn", unable, 2, 9092))
    for _ in range(5):  # auditwatch's own lines are never held back (they say things once themselves)
        assert limit.filter(record("batch"))


def test_the_messages_remembered_are_bounded() -> None:
    limit = RepeatLimit(every_s=60, max_kept=50, clock=lambda: 0.0)
    for i in range(1000):  # messages that differ by more than numbers: each passes once
        name = "".join(chr(ord("g") + (i // 20**d) % 20) for d in range(3))  # letters g-z: no digit, no hex
        assert limit.filter(library_record("aiokafka", "error on topic %s", name)), name
    assert len(limit._seen) == 50


@pytest.mark.integration
def test_a_kafka_client_retrying_a_closed_port_logs_a_bounded_number_of_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real aiokafka client, its broker gone (a closed port on 127.0.0.1): a few lines, not one per retry."""
    lines = io.StringIO()
    monkeypatch.setattr(sys, "stderr", lines)
    configure_logging("text", "info")
    bootstrap = f"127.0.0.1:{free_port()}"

    async def retry_for(seconds: float) -> int:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, retry_backoff_ms=20)
        attempts = 0
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:  # as the consumer's metadata refresh does
            attempts += 1
            with contextlib.suppress(Exception):
                await client.bootstrap()
            await asyncio.sleep(0.02)
        await client.close()
        return attempts

    try:
        attempts = asyncio.run(retry_for(3.0))
    finally:
        logging.getLogger().handlers.clear()
    logged = lines.getvalue().splitlines()
    assert attempts > 20
    assert 1 <= len(logged) <= 3, logged  # each distinct message once
    assert all(" ERROR aiokafka" in line for line in logged), logged


def test_psycopg_echoing_an_error_on_its_way_out_of_a_pipeline_is_not_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    """psycopg logs this (psycopg/_pipeline.py, as it words it) when closing a pipeline fails while a statement's
    error leaves it: the first error is raised, and reported once by whoever catches it (a replay into a
    read-only PostgreSQL: tests/auditwatch/test_replay_inputs.py). psycopg's other lines still pass."""
    lines = io.StringIO()
    monkeypatch.setattr(sys, "stderr", lines)
    configure_logging("text", "info")
    psycopg_log = logging.getLogger("psycopg")
    try:
        psycopg_log.warning("error ignored terminating %r: %s", "<psycopg.Pipeline [INERROR]>", "pipeline aborted")
        psycopg_log.warning("another warning")
    finally:
        logging.getLogger().handlers.clear()
    logged = lines.getvalue().splitlines()
    assert len(logged) == 1 and "another warning" in logged[0], logged
