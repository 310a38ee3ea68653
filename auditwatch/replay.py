"""Offline replay: archived audit logs through the very pipeline the webhook uses.

Inputs are archives of any shape `ingest.archives` reads (kube-apiserver JSON lines, EKS CloudWatch
exports, GKE Cloud Audit Logs, AKS diagnostic records, Elastic documents), gzip or plain (told by magic
bytes, not by name), directories (their files in name order, rotated apiserver logs in time order) and `-`
for stdin. The format is detected per file unless forced. Plain apiserver JSON lines keep a fast path. A bad
line never stops a replay: it is counted, reported with file:line, and quarantined when a store is given.
Copies of one event across a file set (same auditID, stage and stageTimestamp) are dropped and counted.
"""

from __future__ import annotations

import gzip
import io
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

import orjson

from api.store import AlertStore
from auditwatch.settings import Settings
from detectors.alerts import Alert
from detectors.errors import EventError
from detectors.events import AuditEvent, Rejected, event_timestamp, parse_time, split_document, validate_event
from detectors.pipeline import Pipeline
from ingest.archives import Counters, Deduper, detect_format, order_files, read_records

_GZIP_MAGIC = b"\x1f\x8b"
_FLUSH_EVERY = 50_000  # events between store writes (bounds memory on long replays)
_PROGRESS_EVERY = 4096
_PUBLISH_BATCH = 2000  # events per Kafka batch when publishing an archive
_HEAD = 65536  # bytes peeked to detect a file's format


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
    duplicates: int = 0  # copies of an event already read (same auditID, stage, stageTimestamp)
    skipped: int = 0  # records that are not audit events on purpose (other log streams, AKS categories)
    filtered: int = 0  # events left out by --since/--until/--policy
    formats: dict[str, int] = field(default_factory=dict)  # files per detected format

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def input_files(paths: Sequence[str]) -> list[str]:
    """Expand directories (recursively, in name order; rotated logs in time order, the live file last);
    keep `-` and files as given."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if p == "-":
            out.append(p)
        elif path.is_dir():
            out.extend(str(f) for f in order_files([f for f in path.rglob("*") if f.is_file()]))
        else:
            out.append(p)
    return out


class _GzipReader(io.BufferedReader):
    """A buffered (peekable) gzip stream that closes the file under it too."""

    def __init__(self, inner: io.BufferedReader) -> None:
        self._inner = inner
        super().__init__(cast(Any, gzip.GzipFile(fileobj=inner)), _HEAD)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._inner.close()


def _open(name: str) -> IO[bytes]:
    raw: Any = sys.stdin.buffer if name == "-" else open(name, "rb", buffering=_HEAD)  # noqa: SIM115
    buffered: io.BufferedReader = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, _HEAD)
    if buffered.peek(2)[:2] == _GZIP_MAGIC:
        return cast(IO[bytes], _GzipReader(buffered))
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


def _keep(stats: ReplayStats, rejected: list[Rejected], keep_examples: int) -> None:
    stats.rejected += len(rejected)
    room = keep_examples - len(stats.rejected_examples)
    if room > 0:
        stats.rejected_examples.extend(rejected[:room])


def read_archives(
    paths: Sequence[str],
    stats: ReplayStats,
    *,
    progress: Progress | None = None,
    keep_examples: int = 20,
    fmt: str | None = None,
    dedupe: bool = True,
) -> Iterator[tuple[list[AuditEvent], list[Rejected]]]:
    """Yield (events, rejected) per archive record; counts lines, events and rejects into `stats`.

    `fmt` forces a format (`ingest.archives.FORMATS`); by default each file's is detected. An unreadable
    file, or a gzip stream cut short, keeps what was read and is reported as one reject.
    """
    deduper = Deduper() if dedupe else None
    counters = Counters()
    for name in input_files(paths):
        stats.files += 1
        label = "<stdin>" if name == "-" else name
        lineno = 0
        counters.lines = 0
        try:
            with _open(name) as stream:
                detected, whole = detect_format(stream.peek(_HEAD)[:_HEAD])  # type: ignore[attr-defined]
                file_format = fmt or detected
                stats.formats[file_format] = stats.formats.get(file_format, 0) + 1
                if file_format == "apiserver" and not whole:
                    # the fast path: one Event per line
                    for lineno, line in enumerate(stream, start=1):
                        stats.lines += 1
                        if not line.strip():
                            continue
                        events, rejected = decode_line(line, f"{label}:{lineno}")
                        if deduper is not None and events:
                            events = deduper.unique(events, counters)
                        stats.events += len(events)
                        if rejected:
                            _keep(stats, rejected, keep_examples)
                        if progress is not None and stats.lines % _PROGRESS_EVERY == 0:
                            progress.update(stats, label)
                        yield events, rejected
                else:
                    before = stats.lines
                    for events, rejected in read_records(stream, label, file_format, whole, counters):
                        stats.lines = before + counters.lines
                        lineno = counters.lines
                        if deduper is not None and events:
                            events = deduper.unique(events, counters)
                        stats.events += len(events)
                        if rejected:
                            _keep(stats, rejected, keep_examples)
                        if progress is not None:
                            progress.update(stats, label)
                        yield events, rejected
                    stats.lines = before + counters.lines
        except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, zlib.error) as exc:
            item = Rejected(f"{label}:{lineno + 1}", f"cannot read: {exc}", None)
            _keep(stats, [item], keep_examples)
            yield [], [item]
        finally:
            stats.duplicates = counters.duplicates
            stats.skipped = counters.skipped


Transform = Callable[[AuditEvent], "AuditEvent | None"]


def time_window(since: datetime | None, until: datetime | None) -> Transform:
    """Keep events whose stageTimestamp lies in [since, until)."""

    def keep(event: AuditEvent) -> AuditEvent | None:
        t = parse_time(event_timestamp(event.raw))
        if t is None:
            return None
        if (since is not None and t < since) or (until is not None and t >= until):
            return None
        return event

    return keep


def chain(transforms: Sequence[Transform]) -> Transform | None:
    if not transforms:
        return None

    def run(event: AuditEvent) -> AuditEvent | None:
        current: AuditEvent | None = event
        for t in transforms:
            if current is None:
                return None
            current = t(current)
        return current

    return run


class Pacer:
    """Time-faithful replay at `speed`x: sleeps so that event times map onto wall time; one sleep never
    exceeds `max_sleep` seconds (long quiet gaps are compressed), and time going backwards never sleeps."""

    def __init__(self, speed: float, max_sleep: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.speed = speed
        self.max_sleep = max_sleep
        self.sleep = sleep
        self.origin: tuple[float, float] | None = None  # (event time, wall time)

    def wait(self, event: AuditEvent) -> None:
        t = parse_time(event_timestamp(event.raw))
        if t is None:
            return
        ts = t.timestamp()
        now = time.monotonic()
        if self.origin is None:
            self.origin = (ts, now)
            return
        due = self.origin[1] + (ts - self.origin[0]) / self.speed
        delay = due - now
        if delay <= 0:
            return
        if delay > self.max_sleep:
            self.origin = (self.origin[0], self.origin[1] - (delay - self.max_sleep))  # compress the gap
            delay = self.max_sleep
        self.sleep(delay)


def replay(
    paths: Sequence[str],
    pipeline: Pipeline,
    *,
    store: AlertStore | None = None,
    emit: Callable[[Alert], None] | None = None,
    progress: Progress | None = None,
    fmt: str | None = None,
    transform: Transform | None = None,
    pacer: Pacer | None = None,
) -> ReplayStats:
    """Archives -> the detection pipeline -> alerts (emitted, and stored in batches when a store is given).

    `transform` may drop (None) or rewrite each event first (time window, audit policy); `pacer` paces it.
    """
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
    for events, rejected in read_archives(paths, stats, progress=progress, fmt=fmt):
        for event in events:
            if transform is not None:
                kept = transform(event)
                if kept is None:
                    stats.filtered += 1
                    continue
                event = kept
            if pacer is not None:
                pacer.wait(event)
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


def convert(
    paths: Sequence[str], out: IO[bytes], *, fmt: str | None = None, transform: Transform | None = None
) -> ReplayStats:
    """Archives -> normalised audit.k8s.io/v1 Events, one JSON line each (`auditwatch convert`)."""
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
            out.write(dumps(event.raw) + b"\n")
    stats.seconds = time.perf_counter() - started
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
    extra = [
        f"{label}: {n:,}"
        for label, n in (("duplicates dropped", stats.duplicates), ("records skipped (not audit)", stats.skipped),
                         ("events filtered out", stats.filtered))
        if n
    ]  # fmt: skip
    if extra:
        lines.append("; ".join(extra))
    formats = {k: v for k, v in stats.formats.items() if k != "apiserver"}
    if formats:
        lines.append("formats: " + ", ".join(f"{k} ({v} file(s))" for k, v in sorted(stats.formats.items())))
    for item in stats.rejected_examples:
        lines.append(f"  {item.origin}: {item.reason}")
    if stats.rejected > len(stats.rejected_examples):
        lines.append(f"  ... and {stats.rejected - len(stats.rejected_examples):,} more")
    return "\n".join(lines)


def parse_rfc3339(value: str) -> datetime:
    """--since/--until: an RFC 3339 time (a date alone means its midnight UTC)."""
    parsed = parse_time(value.strip().replace("z", "Z"))
    if parsed is None:
        raise ValueError(f"{value!r} is not an RFC 3339 time (e.g. 2026-11-20T09:00:00Z)")
    return parsed


def event_filters(
    *, since: str | None = None, until: str | None = None, policy_file: str | None = None, speed: float | None = None
) -> tuple[Transform | None, Pacer | None]:
    """The transform and pacer of replay/convert options; ValueError or PolicyError with a message."""
    from detectors.policy import apply_policy, load_policy

    transforms: list[Transform] = []
    if since is not None or until is not None:
        start = parse_rfc3339(since) if since is not None else None
        end = parse_rfc3339(until) if until is not None else None
        if start is not None and end is not None and end <= start:
            raise ValueError("--until must be after --since")
        transforms.append(time_window(start, end))
    if policy_file is not None:
        try:
            text = Path(policy_file).read_text()
        except OSError as exc:
            raise ValueError(f"cannot read policy: {exc}") from None
        policy = load_policy(text, source=policy_file)
        transforms.append(lambda event: apply_policy(policy, event))
    pacer = None
    if speed is not None:
        if not speed > 0:
            raise ValueError("--speed must be a positive number")
        pacer = Pacer(speed)
    return chain(transforms), pacer
