"""`auditwatch convert`: archives -> normalised audit.k8s.io/v1 Events, one JSON line each."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import IO

import orjson

from auditwatch.interrupts import held_signals, signal_of
from auditwatch.replay import ReplayStats, Transform, stop_point
from detectors.events import AuditEvent
from detectors.redact import redact_event
from ingest.archives import read_archives

_CHUNK_BYTES = 1024 * 1024  # a record of many events is written in pieces of about this size


def convert(
    paths: Sequence[str],
    out: IO[bytes],
    *,
    fmt: str | None = None,
    transform: Transform | None = None,
    raw: bool = False,
) -> ReplayStats:
    """Archives -> normalised audit.k8s.io/v1 Events, one JSON line each (`auditwatch convert`): redacted as an
    alert's event is (what is printed is shown), or as read with `raw` (for another detector: the archives hold
    the same).

    Ctrl-C (KeyboardInterrupt; SIGTERM too, as `interrupts.Terminated`) ends the conversion (`interrupted`,
    `stop_signal`) after the last line written: lines are written with both signals held back, so that none is
    cut, and counted as they are. What `out` buffers is for the caller to flush."""
    stats = ReplayStats()
    started = time.perf_counter()
    dumps = orjson.dumps
    unwritten: list[AuditEvent] = []  # the events of the record (or batch of lines) not yet written
    written: AuditEvent | None = None
    try:
        for events, _rejected in read_archives(paths, stats, fmt=fmt):
            unwritten = events
            lines: list[bytes] = []
            size = filtered = 0
            for done, event in enumerate(events, start=1):
                kept = event if transform is None else transform(event)
                if kept is None:
                    filtered += 1
                else:
                    lines.append(dumps(kept.raw if raw else redact_event(kept.raw)) + b"\n")
                    size += len(lines[-1])
                if size >= _CHUNK_BYTES or done == len(events):
                    with held_signals():
                        out.write(b"".join(lines))
                        stats.filtered += filtered
                        written, unwritten = event, events[done:]
                    lines, size, filtered = [], 0, 0
    except KeyboardInterrupt as stop:
        undone, where = stop_point(unwritten, written)
        stats.events -= undone
        stats.interrupted, stats.stop_signal = where, signal_of(stop)
    finally:
        stats.seconds = time.perf_counter() - started
    return stats
