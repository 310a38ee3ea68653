"""Offline replay: archived audit logs through the very pipeline the webhook uses.

Inputs are JSON-lines files (one Event, or an EventList, per line), gzip or plain (told by magic bytes,
not by name), directories (their files in name order) and `-` for stdin. A bad line never stops a
replay: it is counted, reported with file:line, and quarantined when a store is given.
"""

from __future__ import annotations

import gzip
import io
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import orjson

from api.store import AlertStore
from auditwatch.settings import Settings
from detectors.alerts import Alert
from detectors.errors import EventError
from detectors.events import AuditEvent, Rejected, split_document, validate_event
from detectors.pipeline import Pipeline

_GZIP_MAGIC = b"\x1f\x8b"
_FLUSH_EVERY = 50_000  # events between store writes (bounds memory on long replays)
_PROGRESS_EVERY = 4096
_PUBLISH_BATCH = 2000  # events per Kafka batch when publishing an archive


@dataclass
class ReplayStats:
    files: int = 0
    lines: int = 0
    events: int = 0
    alerts: int = 0
    new_alerts: int = 0
    rejected: int = 0
    rejected_examples: list[Rejected] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def input_files(paths: Sequence[str]) -> list[str]:
    """Expand directories (recursively, in name order); keep `-` and files as given."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if p == "-":
            out.append(p)
        elif path.is_dir():
            out.extend(str(f) for f in sorted(path.rglob("*")) if f.is_file())
        else:
            out.append(p)
    return out


def _open(name: str) -> IO[bytes]:
    raw: Any = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
    buffered: io.BufferedReader = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    if buffered.peek(2)[:2] == _GZIP_MAGIC:
        return cast(IO[bytes], gzip.GzipFile(fileobj=buffered))
    return buffered


def read_lines(name: str) -> Iterator[tuple[int, bytes]]:
    with _open(name) as stream:
        yield from enumerate(stream, start=1)


def decode_line(line: bytes, origin: str) -> tuple[list[AuditEvent], list[Rejected]]:
    """One archive line -> events and rejected items (the fast path is one plain Event per line)."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        reason = f"malformed JSON: {exc.msg} (char {exc.pos})"
        if not line.endswith(b"\n"):
            reason += "; the last line looks truncated"
        return [], [Rejected(origin, reason, line[:4096].decode("utf-8", "replace"))]
    if type(doc) is dict and doc.get("kind") == "Event":
        invalid = validate_event(doc)
        if invalid is None:
            return [AuditEvent(raw=doc, origin=origin)], []
        return [], [Rejected(origin, invalid, doc)]
    try:
        return split_document(doc, origin=origin)
    except EventError as exc:  # the whole line is not audit data
        return [], [Rejected(origin, str(exc), doc)]


class Progress:
    """A one-line progress display on a terminal; silent otherwise."""

    def __init__(self, stream: IO[str], enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.started = time.perf_counter()
        self.last = self.started

    def update(self, stats: ReplayStats, current: str) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self.last < 0.2:
            return
        self.last = now
        rate = stats.events / (now - self.started) if now > self.started else 0.0
        self.stream.write(
            f"\r{stats.events:>12,} events  {rate:>10,.0f}/s  {stats.alerts:>6,} alerts  "
            f"{stats.rejected:>6,} rejected  {Path(current).name[:40]:<40}"
        )
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 110 + "\r")
            self.stream.flush()


def read_archives(
    paths: Sequence[str], stats: ReplayStats, *, progress: Progress | None = None, keep_examples: int = 20
) -> Iterator[tuple[list[AuditEvent], list[Rejected]]]:
    """Yield (events, rejected) per archive line; counts lines, events and rejects into `stats`.

    An unreadable file, or a gzip stream cut short, keeps what was read and is reported as one reject.
    """
    for name in input_files(paths):
        stats.files += 1
        label = "<stdin>" if name == "-" else name
        lineno = 0
        try:
            for lineno, line in read_lines(name):
                stats.lines += 1
                if not line.strip():
                    continue
                events, rejected = decode_line(line, f"{label}:{lineno}")
                stats.events += len(events)
                if rejected:
                    stats.rejected += len(rejected)
                    room = keep_examples - len(stats.rejected_examples)
                    if room > 0:
                        stats.rejected_examples.extend(rejected[:room])
                if progress is not None and stats.lines % _PROGRESS_EVERY == 0:
                    progress.update(stats, label)
                yield events, rejected
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            item = Rejected(f"{label}:{lineno + 1}", f"cannot read: {exc}", None)
            stats.rejected += 1
            if len(stats.rejected_examples) < keep_examples:
                stats.rejected_examples.append(item)
            yield [], [item]


def replay(
    paths: Sequence[str],
    pipeline: Pipeline,
    *,
    store: AlertStore | None = None,
    emit: Callable[[Alert], None] | None = None,
    progress: Progress | None = None,
) -> ReplayStats:
    """Archives -> the detection pipeline -> alerts (emitted, and stored in batches when a store is given)."""
    stats = ReplayStats()
    started = time.perf_counter()
    pending_alerts: list[Alert] = []
    pending_rejects: list[Rejected] = []
    since_flush = 0

    def flush() -> None:
        nonlocal pending_alerts, pending_rejects, since_flush
        if store is not None and (pending_alerts or pending_rejects):
            stats.new_alerts += store.write(pending_alerts, pending_rejects)
        pending_alerts, pending_rejects, since_flush = [], [], 0

    process = pipeline.process
    for events, rejected in read_archives(paths, stats, progress=progress):
        for event in events:
            alerts = process(event)
            if alerts:
                stats.alerts += len(alerts)
                pending_alerts.extend(alerts)
                if emit is not None:
                    for alert in alerts:
                        emit(alert)
        if rejected:
            pending_rejects.extend(rejected)
        since_flush += len(events)
        if since_flush >= _FLUSH_EVERY:
            flush()
    flush()
    stats.seconds = time.perf_counter() - started
    if progress is not None:
        progress.done()
    return stats


async def publish(paths: Sequence[str], settings: Settings, *, progress: Progress | None = None) -> ReplayStats:
    """Archives -> the audit topic (what `ingest` would have produced), for `auditwatch detect`."""
    from auditwatch.server import kafka_sink, topic_specs
    from ingest.kafka import ensure_topics

    assert settings.kafka_bootstrap is not None
    stats = ReplayStats()
    started = time.perf_counter()
    await ensure_topics(settings.kafka_bootstrap, topic_specs(settings))
    sink = kafka_sink(settings)
    events: list[AuditEvent] = []
    rejects: list[Rejected] = []
    try:
        for line_events, line_rejects in read_archives(paths, stats, progress=progress):
            events.extend(line_events)
            rejects.extend(line_rejects)
            if len(events) + len(rejects) >= _PUBLISH_BATCH:
                await sink.accept(events, rejects)
                events, rejects = [], []
        if events or rejects:
            await sink.accept(events, rejects)
    finally:
        await sink.close()
    stats.seconds = time.perf_counter() - started
    if progress is not None:
        progress.done()
    return stats


def format_summary(stats: ReplayStats, *, stored: bool, published_to: str | None = None) -> str:
    verb = f"published to {published_to}" if published_to else "replayed"
    lines = [
        f"{verb} {stats.events:,} events from {stats.files} file(s), {stats.lines:,} lines "
        f"in {stats.seconds:.2f}s ({stats.events_per_s:,.0f} events/s)",
    ]
    if published_to:
        lines.append(f"rejected: {stats.rejected:,}" + (" (sent to the dead-letter topic)" if stats.rejected else ""))
    else:
        lines += [
            f"alerts: {stats.alerts:,}" + (f" ({stats.new_alerts:,} new in the store)" if stored else ""),
            f"rejected: {stats.rejected:,}" + (" (kept in the quarantine table)" if stored and stats.rejected else ""),
        ]
    for item in stats.rejected_examples:
        lines.append(f"  {item.origin}: {item.reason}")
    if stats.rejected > len(stats.rejected_examples):
        lines.append(f"  ... and {stats.rejected - len(stats.rejected_examples):,} more")
    return "\n".join(lines)
