"""`auditwatch convert`: archives -> normalised audit.k8s.io/v1 Events, one JSON line each."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import IO

import orjson

from auditwatch.replay import ReplayStats, Transform
from detectors.redact import redact_event
from ingest.archives import read_archives


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
    the same)."""
    stats = ReplayStats()
    started = time.perf_counter()
    dumps = orjson.dumps
    for events, _rejected in read_archives(paths, stats, fmt=fmt):
        for event in events:
            if transform is not None:
                kept = transform(event)
                if kept is None:
                    stats.filtered += 1
                    continue
                event = kept
            out.write(dumps(event.raw if raw else redact_event(event.raw)) + b"\n")
    stats.seconds = time.perf_counter() - started
    return stats
