"""Process logs on stderr: one line per record, as text for people or as JSON for log shippers.

`--log-format text|json` and `--log-level` (or AUDITWATCH_LOG_FORMAT / AUDITWATCH_LOG_LEVEL) choose them.
A record's structured fields are the `extra=` of the logging call (`log.info("batch", extra={"events": 400})`):
text shows them as `key=value` after the message, JSON as members of the object beside `ts`, `level`,
`logger` and `msg`. The long-running commands log auditwatch's own records from INFO (a line per batch, one
per alert at WARNING: `log_alerts`), the others from WARNING; libraries log from WARNING whatever the level, and
the Kafka client's lines (one per reconnection attempt while a broker is away) at most once a minute each
(`RepeatLimit`), and none of psycopg's echoes of an error already on its way to the caller (`ShadowedErrors`).
Values are quoted and escaped, so a field taken from an event (a user name) cannot forge a line. Only
redacted values are logged: alerts come redacted from the detectors, and no token or password is ever a field.

Stdlib only: the command line imports this before it knows which command runs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from auditwatch.startup import refuse

if TYPE_CHECKING:
    from detectors.alerts import Alert
    from detectors.tuning.tuning import Tuning

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
# attributes every LogRecord has: anything else on a record came from `extra=` and is a structured field
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}
_NOT_FIELDS = _STANDARD | {"color_message"}  # uvicorn's coloured copy of its message
_PLAIN = re.compile(r"[\w.:/@+,\[\]-]+")


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _NOT_FIELDS and not k.startswith("_")}


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if _PLAIN.fullmatch(text) else json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2026-11-20 09:00:00,123 INFO auditwatch.webhook: batch events=400 rejected=0 alerts=6 ms=41.2`"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record).replace("\n", "\\n")
        fields = record_fields(record)
        return line + "".join(f" {k}={_text_value(v)}" for k, v in fields.items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (RFC 3339 UTC), level, logger, msg, the fields, and exc for a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        doc: dict[str, Any] = {"ts": ts, "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        for key, value in record_fields(record).items():
            doc.setdefault(key, value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the sys.stderr of the moment (tests replace it), one line per record."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class RepeatLimit(logging.Filter):
    """Passes each message of the loggers under `prefixes` at most once every `every_s` seconds: a message is its
    logger, level and text with numbers and addresses blanked (`Unable connect to node with id 1: ...`, retried
    ten times a second while the broker is away). The next line passed says how many like it were held back
    (`suppressed=N`). At most `max_kept` messages are remembered, the least recently seen forgotten first."""

    _VARYING = re.compile(r"0x[0-9a-fA-F]+|\d+")

    def __init__(
        self,
        prefixes: tuple[str, ...] = ("aiokafka",),
        every_s: float = 60.0,
        max_kept: int = 512,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.dotted = tuple(f"{p}." for p in prefixes)
        self.every_s, self.max_kept, self.clock = every_s, max_kept, clock
        self._seen: OrderedDict[tuple[str, int, str], tuple[float, int]] = OrderedDict()  # passed at, held since
        self._lock = threading.Lock()  # filters run outside the handler's lock, on any thread that logs

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name not in self.prefixes and not record.name.startswith(self.dotted):
            return True
        key = (record.name, record.levelno, self._VARYING.sub("#", record.getMessage()))
        now = self.clock()
        with self._lock:
            passed_at, held = self._seen.pop(key, (-float("inf"), 0))  # put back last: the most recently seen
            if now - passed_at < self.every_s:
                self._seen[key] = (passed_at, held + 1)
                return False
            self._seen[key] = (now, 0)
            while len(self._seen) > self.max_kept:
                self._seen.popitem(last=False)
        if held:
            record.suppressed = held  # a field of the line
        return True


class ShadowedErrors(logging.Filter):
    """Drops psycopg's `error ignored terminating <pipeline>: ...`: logged when closing a pipeline fails while
    an error is already leaving it (a write the database refused), and that error is the one reported, once, by
    whoever catches it. The line added nothing but the connection's host, user and database."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "psycopg" and str(record.msg).startswith("error ignored terminating"))


def configure_logging(log_format: str | None, log_level: str | None, *, default_level: str = "warning") -> None:
    """Log to stderr in `log_format` (else AUDITWATCH_LOG_FORMAT, else text), auditwatch's records from
    `log_level` (else AUDITWATCH_LOG_LEVEL; AUDITWATCH_DEBUG=1 means debug; else `default_level`)."""
    fmt = (log_format or os.environ.get("AUDITWATCH_LOG_FORMAT") or "text").strip().lower()
    if fmt not in LOG_FORMATS:
        refuse(f"bad setting: AUDITWATCH_LOG_FORMAT: {fmt!r} is not one of {', '.join(LOG_FORMATS)}")
    debug = "debug" if os.environ.get("AUDITWATCH_DEBUG") else None
    level = (log_level or os.environ.get("AUDITWATCH_LOG_LEVEL") or debug or default_level).strip().lower()
    if level not in LOG_LEVELS:
        refuse(f"bad setting: AUDITWATCH_LOG_LEVEL: {level!r} is not one of {', '.join(LOG_LEVELS)}")
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RepeatLimit())
    handler.addFilter(ShadowedErrors())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:  # main() may run more than once
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(max(logging.WARNING, numeric))
    logging.getLogger("auditwatch").setLevel(numeric)


def alert_fields(alert: Alert) -> dict[str, Any]:
    """What a log line says about an alert: all of it redacted by the detectors (no event, no message)."""
    return {
        "rule_id": alert.rule_id,
        "severity": alert.severity.label,
        "principal": alert.impersonated_user or alert.user,
        "namespace": alert.namespace,
        "verb": alert.verb,
        "resource": alert.resource,
        "alert_id": alert.id,
    }


def log_alerts(log: logging.Logger, alerts: Iterable[Alert]) -> None:
    """One WARNING line per alert (those new to the store: a redelivered batch's are not logged again)."""
    if not log.isEnabledFor(logging.WARNING):
        return
    for alert in alerts:
        log.warning("alert", extra=alert_fields(alert))


class TuningLog:
    """What the site tuning file kept out (`detectors.tuning.tuning.Suppressed`), logged: an INFO line
    `tuning suppressed` with the count since the previous line per `rule (reason)`, at most every `every_s`
    seconds and only when something new was suppressed."""

    def __init__(self, tuning: Tuning | None, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.tuning = tuning
        self.every_s = every_s
        self.clock = clock
        self._last = -float("inf")
        self._reported: dict[tuple[str, str], int] = {}

    def report(self, log: logging.Logger) -> None:
        if self.tuning is None or self.clock() - self._last < self.every_s:
            return
        counts = dict(self.tuning.suppressed.counts)
        new = {key: n - self._reported.get(key, 0) for key, n in counts.items() if n > self._reported.get(key, 0)}
        if not new:
            return
        self._last, self._reported = self.clock(), counts
        by_rule = {f"{rule} ({reason})": n for (rule, reason), n in sorted(new.items())}
        log.info("tuning suppressed", extra={"alerts": sum(new.values()), "by_rule": by_rule})
