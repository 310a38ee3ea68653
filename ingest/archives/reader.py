"""Reading archives: files, directories and stdin in, (events, rejected) per record out, counted as it goes.

The format is detected per file unless forced. A bad record never stops a read: it is a reject with
file:line. An unreadable file, or a gzip stream cut short, keeps what was read and is one reject. Copies
of one event across a file set (same auditID, stage and stageTimestamp) are dropped and counted. Memory
stays bounded whatever the input: lines, documents and kept rejects are capped (see `files`, `records`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from detectors.events import AuditEvent, Rejected, Rejections, copy_key
from ingest.archives.files import UNREADABLE, head_of, input_files, label_of, open_archive
from ingest.archives.formats import detect_format
from ingest.archives.records import Batch, Counters, read_records


@dataclass
class ArchiveStats:
    """What a read of archives saw."""

    files: int = 0
    lines: int = 0
    events: int = 0
    rejected: int = 0
    rejected_examples: list[Rejected] = field(default_factory=list)
    duplicates: int = 0  # copies of an event already read (same auditID, stage, stageTimestamp)
    skipped: int = 0  # records that are not audit events on purpose (other log streams, AKS categories)
    formats: dict[str, int] = field(default_factory=dict)  # files per detected format
    passed_over: int = 0  # FIFOs, sockets and devices in input directories, not read (`input_files`)
    current: str = ""  # the file being read (once done, the last one read)
    current_from: int = 0  # `lines` before it

    @property
    def position(self) -> str:
        """The last line handed on, as file:line."""
        return f"{self.current}:{self.lines - self.current_from}"

    def count_rejected(self, rejected: Rejections, keep_examples: int) -> None:
        self.rejected += rejected.total
        room = keep_examples - len(self.rejected_examples)
        if room > 0:
            self.rejected_examples.extend(rejected.kept[:room])


@dataclass
class Deduper:
    """Drops a second copy of an event across a file set: same auditID, stage and stageTimestamp.

    The key is `copy_key`'s. Memory is bounded: two generations of `generation` keys each, so copies further
    apart than that are kept.
    """

    generation: int = 1_000_000
    current: set[str] = field(default_factory=set)
    previous: set[str] = field(default_factory=set)

    def unique(self, events: list[AuditEvent], counters: Counters, keys: list[str] | None = None) -> list[AuditEvent]:
        """The events that are no copy of one seen before; `keys` are their `copy_key`s when known."""
        current, previous = self.current, self.previous
        if keys is None:
            keys = [copy_key(event.raw) for event in events]
        if len(set(keys)) == len(keys) and current.isdisjoint(keys) and (not previous or previous.isdisjoint(keys)):
            kept = events  # the usual batch, no copy in it: told at C speed
            current.update(keys)
        else:
            kept = self._first_copies(events, keys, counters)
        if len(current) >= self.generation:
            self.previous, self.current = current, set()
        return kept

    def _first_copies(self, events: list[AuditEvent], keys: list[str], counters: Counters) -> list[AuditEvent]:
        kept: list[AuditEvent] = []
        current, previous = self.current, self.previous
        for event, key in zip(events, keys, strict=True):
            if key in current or (previous and key in previous):
                counters.duplicates += 1
            else:
                current.add(key)
                kept.append(event)
        return kept


def read_archives(
    paths: Sequence[str],
    stats: ArchiveStats,
    *,
    progress: Callable[[str], None] | None = None,
    keep_examples: int = 20,
    fmt: str | None = None,
    dedupe: bool = True,
    whole_document_bytes: int = 0,
) -> Iterator[Batch]:
    """Yield (events, rejected) per archive record (apiserver lines: per batch of lines); count files, lines,
    events and rejects into `stats`.

    `fmt` forces a format (`FORMATS`); by default each file's is detected. `progress` is called with the
    current file's name after each batch (once the caller has taken it). A file of JSON documents is read as a
    stream of their records, in memory bounded by the largest, as fast as decoding it whole; or, up to
    `whole_document_bytes` (after gzip), decoded whole.
    """
    deduper = Deduper() if dedupe else None
    counters = Counters()
    special: list[str] = []
    names = input_files(paths, special)
    stats.passed_over = len(special)
    for name in names:
        stats.files += 1
        label = label_of(name)
        counters.lines = counters.failed_line = 0
        before = stats.current_from = stats.lines
        stats.current = label
        try:
            with open_archive(name) as opened:
                head, stream = head_of(opened)
                detected, whole = detect_format(head)
                del head  # a first line may be up to MAX_LINE_BYTES
                file_format = fmt or detected
                stats.formats[file_format] = stats.formats.get(file_format, 0) + 1
                for events, rejected in read_records(stream, label, file_format, whole, counters, whole_document_bytes):
                    stats.lines = before + counters.lines
                    if deduper is not None and events:
                        events = deduper.unique(events, counters, counters.copy_keys)
                    counters.copy_keys = None  # the batch's, if its reader set them (the next is not told by any other)
                    stats.events += len(events)
                    if rejected:
                        stats.count_rejected(rejected, keep_examples)
                    yield events, rejected
                    if progress is not None:  # after the batch's detection: its counts are final
                        progress(label)
                stats.lines = before + counters.lines
        except UNREADABLE as exc:
            stats.lines = before + counters.lines
            line = counters.failed_line or counters.lines + 1  # the line it failed in
            unreadable = Rejections.of(Rejected(f"{label}:{line}", f"cannot read: {exc}", None))
            stats.count_rejected(unreadable, keep_examples)
            yield [], unreadable
        finally:
            stats.duplicates = counters.duplicates
            stats.skipped = counters.skipped
