"""Offline replay: archived audit logs through the very pipeline the webhook uses.

Archives are read by `ingest.archives` (every format it knows, gzip or plain, directories, `-` for stdin);
here they are wired to an optional time window and audit policy, a pacer, the detection pipeline and the
batch writer (`replay`); to normalised JSON lines in `auditwatch.convert`, to the audit topic in `auditwatch.publish`.
A bad line never stops a replay: it is counted, reported with file:line, and quarantined when a store is given;
so is an event that a detector fails on (the other detectors' alerts for it are kept). A store that fails
ends the replay with StoreError, saying how far it got: what was written before stays written. Ctrl-C, or
SIGTERM where the command made it an interrupt (`auditwatch.interrupts`), stores what was found and ends it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from api.errors import StoreError
from api.store import AlertStore
from auditwatch.batches import BatchResults, BatchWriter
from auditwatch.interrupts import signal_of, stopped_by
from auditwatch.live_exceptions import LiveExceptions
from detectors.alerts import Alert
from detectors.events import MAX_KEPT_REJECTED, AuditEvent, Rejected, Rejections, event_timestamp, parse_time
from detectors.pipeline import Pipeline
from ingest.archives import ArchiveStats, read_archives

_FLUSH_EVERY = 50_000  # events between store writes (bounds memory on long replays)
_KEEP_EXAMPLES = 20  # rejected items a summary shows
QUARANTINED = f" (the first {MAX_KEPT_REJECTED} per {_FLUSH_EVERY:,} events kept in the quarantine table)"


@dataclass
class ReplayStats(ArchiveStats):
    """What a replay saw: the archives' counts, and what detection made of them."""

    alerts: int = 0
    new_alerts: int = 0
    suppressed: int = 0  # alerts that rule exceptions of the store kept out of it (and of --output)
    seconds: float = 0.0
    filtered: int = 0  # events left out by --since/--until/--policy
    interrupted: str | None = None  # stopped by Ctrl-C or SIGTERM: where ("before file:line", "after file:line")
    stop_signal: int = signal.SIGINT  # what stopped it, with `interrupted`: SIGINT (Ctrl-C) or SIGTERM

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


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


def progress_of(progress: Progress | None, stats: ReplayStats) -> Callable[[str], None] | None:
    """The reader's progress callback: the display, fed with the replay's stats."""
    if progress is None:
        return None
    return lambda current: progress.update(stats, current)


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
    last_use: bool = False,
) -> ReplayStats:
    """Archives -> the detection pipeline -> alerts (emitted, and stored in batches when a store is given).

    `transform` may drop (None) or rewrite each event first (time window, audit policy); `pacer` paces it.
    `last_use` says the pipeline is not used after this replay (the command's), so its memory of seen events
    need not be kept up to date for later ones.
    With a store, its rule exceptions apply (loaded at start, reloaded every 30 s): the alerts they match
    are counted (`suppressed`, and each exception's hits), neither stored nor emitted.
    Ctrl-C (KeyboardInterrupt; SIGTERM too, as `interrupts.Terminated`) or a closed output pipe (BrokenPipeError)
    stores what was found until then; the first ends the replay (`interrupted`, `stop_signal`), the second is
    raised again.
    """
    stats = ReplayStats()
    started = time.perf_counter()
    writer = BatchWriter(store) if store is not None else None
    exceptions = LiveExceptions(store) if store is not None else None
    pending_alerts: list[Alert] = []
    pending_rejects = Rejections()  # the first MAX_KEPT_REJECTED of each flush are quarantined, all counted
    pending_hits: dict[str, list[str]] = {}
    since_flush = 0

    def flush() -> None:
        nonlocal pending_alerts, pending_rejects, pending_hits, since_flush
        if writer is not None:
            try:
                written = writer.write(BatchResults(pending_alerts, pending_rejects.kept, hits=pending_hits))
            except StoreError as exc:
                raise StoreError(f"replay stopped at {stats.events:,} events read: {exc}") from exc
            stats.new_alerts += written.new_alerts
            if written.refused:
                stats.count_rejected(Rejections.of(*written.refused), _KEEP_EXAMPLES)
        pending_alerts, pending_rejects, pending_hits, since_flush = [], Rejections(), {}, 0

    # The reader drops every copy of an event within a larger window than the pipeline's (`Deduper`): when the
    # pipeline gets exactly what it reads and has seen nothing before, its own look-up could never find one (and
    # what it would remember is needed only by a later use).
    unique = last_use and transform is None and not pipeline.remembers_events
    process = pipeline.process_unique if unique else pipeline.process
    failed: list[Rejected] = []  # events a detector failed on
    events: list[AuditEvent] = []  # the batch in detection (emptied when done)
    event: AuditEvent | None = None
    try:
        for events, rejected in read_archives(paths, stats, progress=progress_of(progress, stats), fmt=fmt):
            if exceptions is not None:
                exceptions.refresh_if_due()
            if rejected:
                pending_rejects.merge(rejected)
            for event in events:
                kept = event if transform is None else transform(event)
                if kept is None:
                    stats.filtered += 1
                    continue
                if pacer is not None:
                    pacer.wait(kept)
                alerts = process(kept, failed)
                if alerts and exceptions is not None:
                    alerts = _suppress(exceptions, alerts, pending_hits, stats)
                if alerts:
                    stats.alerts += len(alerts)
                    pending_alerts.extend(alerts)
                    if emit is not None:
                        for alert in alerts:
                            emit(alert)
            failed = _quarantine_failed(failed, pending_rejects, stats)
            since_flush += len(events)
            events = []
            if since_flush >= _FLUSH_EVERY:
                flush()
        flush()
    except (KeyboardInterrupt, BrokenPipeError) as stop:
        undetected, where = stop_point(events, event)
        stats.events -= undetected
        _quarantine_failed(failed, pending_rejects, stats)
        flush()  # alert ids come from the events: a replay of the rest, or of all again, stores nothing twice
        if not isinstance(stop, KeyboardInterrupt):
            raise
        stats.interrupted, stats.stop_signal = where, signal_of(stop)
    finally:
        stats.seconds = time.perf_counter() - started
        if progress is not None:
            progress.done()
    return stats


def _quarantine_failed(failed: list[Rejected], pending: Rejections, stats: ReplayStats) -> list[Rejected]:
    """Count and queue for the quarantine the events a detector failed on; the list to collect the next ones."""
    if not failed:
        return failed
    crashed = Rejections.of(*failed)
    stats.count_rejected(crashed, _KEEP_EXAMPLES)
    pending.merge(crashed)
    return []


def stop_point(batch: list[AuditEvent], current: AuditEvent | None) -> tuple[int, str]:
    """Where a replay (or a conversion) stopped: how many events of the batch in detection (counted as read;
    empty between batches) were not detected, the one in detection and those after it; and the place, before
    the first of them or after the last event detected (`current` then)."""
    for done, event in enumerate(batch):
        if event is current:
            return len(batch) - done, f"before {event.origin}"
    if batch:  # stopped before its first event
        return len(batch), f"before {batch[0].origin}"
    return 0, "before the first event" if current is None else f"after {current.origin}"


def _suppress(
    exceptions: LiveExceptions, alerts: list[Alert], hits: dict[str, list[str]], stats: ReplayStats
) -> list[Alert]:
    """The alerts no exception matches; the others are added to `hits` and counted as suppressed."""
    kept, new_hits = exceptions.split(alerts)
    for exception_id, alert_ids in new_hits.items():
        hits.setdefault(exception_id, []).extend(alert_ids)
        stats.suppressed += len(alert_ids)
    return kept


def format_summary(
    stats: ReplayStats, *, stored: bool, published_to: str | None = None, converted: bool = False
) -> str:
    verb = f"published to {published_to}" if published_to else "converted" if converted else "replayed"
    lines = [
        f"{verb} {stats.events:,} events from {stats.files} file(s), {stats.lines:,} lines "
        f"in {stats.seconds:.2f}s ({stats.events_per_s:,.0f} events/s)",
    ]
    if published_to:
        lines.append(f"rejected: {stats.rejected:,}" + (" (sent to the dead-letter topic)" if stats.rejected else ""))
    else:
        lines += [
            f"alerts: {stats.alerts:,}"
            + (f" ({stats.new_alerts:,} new in the store)" if stored else "")
            + (f"; {stats.suppressed:,} suppressed by rule exceptions" if stats.suppressed else ""),
            f"rejected: {stats.rejected:,}" + (QUARANTINED if stored and stats.rejected else ""),
        ]
    extra = [
        f"{label}: {n:,}"
        for label, n in (("duplicates dropped", stats.duplicates), ("records skipped (not audit)", stats.skipped),
                         ("events filtered out", stats.filtered),
                         ("FIFOs, sockets and devices in directories not read", stats.passed_over))
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
    if stats.interrupted:
        done = "Kafka acknowledged" if published_to else "was written" if converted else "was detected"
        stopped = f"{stopped_by(stats.stop_signal)} {stats.interrupted}"
        lines.append(f"{stopped}: the counts above are of what {done} until then")
    return "\n".join(lines)


def parse_rfc3339(value: str) -> datetime:
    """--since/--until: an RFC 3339 time (a date alone means its midnight UTC)."""
    text = value.strip().replace("z", "Z")
    parsed = parse_time(text)
    if parsed is None:
        try:
            datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is not an RFC 3339 time (e.g. 2026-11-20T09:00:00Z)") from None
        raise ValueError(f"{value!r} is out of range: not a date in UTC")  # 0001-01-01T00:00:00+14:00
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
            raise ValueError(f"cannot read policy {policy_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ValueError(f"cannot read policy {policy_file}: not UTF-8 text") from None
        policy = load_policy(text, source=policy_file)
        transforms.append(lambda event: apply_policy(policy, event))
    pacer = None
    if speed is not None:
        if not speed > 0:
            raise ValueError("--speed must be a positive number")
        pacer = Pacer(speed)
    return chain(transforms), pacer
