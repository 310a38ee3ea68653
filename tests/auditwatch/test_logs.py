"""Log lines: text for people, one JSON object for shippers, structured fields in both; nothing forged."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime

from auditwatch.logs import JsonFormatter, TextFormatter, alert_fields, log_alerts
from detectors.events import AuditEvent, Rejected
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.events import exec_event


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
    log_alerts(logger, alerts, [Rejected("elsewhere", "refused", None)])
    assert [r.getMessage() for r in records] == ["alert"] * len(alerts)
    assert all(r.levelno == logging.WARNING for r in records)
    records.clear()
    log_alerts(logger, alerts, [Rejected("t:1", "the store refused it", None)])  # not stored: not logged
    assert records == []
