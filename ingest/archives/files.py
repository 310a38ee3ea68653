"""Archive files: paths to read in order (directories, rotated logs, `-` for stdin), checked to be readable, opened
plain or gzip, and read in bounded pieces: lines up to MAX_LINE_BYTES, an over-long line skipped without being
held (a JSON document is read a record at a time: `stream`).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
import re
import stat
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from ingest.archives.formats import GZIP_MAGIC

HEAD = 65536  # bytes an opened archive can peek at (format detection reads them)
STDIN = "-"
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)  # Windows PowerShell's `>` and Out-File write UTF-16LE
CUT_UTF16 = "UTF-16 file cut short: it ends with half a character (an odd number of bytes)"
# A line holds one event (at most detectors.limits.MAX_EVENT_BYTES, 7 MiB) or a record around one; a longer
# line is rejected, and skipped up to MAX_SKIPPED_BYTES: no end of line within that (/dev/zero, a bomb of one
# endless line) and the rest of the file is not read.
MAX_LINE_BYTES = 16 * 1024 * 1024
MAX_SKIPPED_BYTES = 256 * 1024 * 1024
MAX_DOCUMENT_BYTES = 128 * 1024 * 1024  # a subscription message inflated, as much as one webhook body
MAX_GZIP_LAYERS = 3  # a log gzipped twice and a gzipped Firehose object take two; more is no archive we know
_SKIP_CHUNK = 1024 * 1024
# What ends the reading of a file early (what was read is kept; the rest is one reject)
UNREADABLE = (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, zlib.error, csv.Error)
# lumberjack: <base>-<UTC 2006-01-02T15-04-05.000><ext>[.gz]; the live file is <base><ext>
_ROTATED = re.compile(r"^(?P<base>.+)-(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(\.\d{3})?)(?P<ext>\.[^.]+)?(\.gz)?$")


def _rotation_key(path: Path) -> tuple[str, int, str, str]:
    m = _ROTATED.match(path.name)
    if m:
        return str(path.with_name(m["base"] + (m["ext"] or ""))), 0, m["ts"], path.name
    return str(path), 1, "", path.name


def order_files(files: Sequence[Path]) -> list[Path]:
    """Rotated lumberjack files in time order (by the UTC time in their names), each live file after its
    rotated ones; other files in name order."""
    return sorted(files, key=_rotation_key)


def input_files(paths: Sequence[str], special: list[str] | None = None) -> list[str]:
    """Expand directories (recursively, in name order; rotated logs in time order, the live file last);
    keep `-` and files as given.

    A FIFO, socket or device found in a directory is no archive (opening a FIFO would wait for a writer): it is
    left out, and named in `special` (`path (a FIFO)`). Given by name, it is read: `replay <(zcat x.gz)`."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if p == STDIN:
            out.append(p)
        elif path.is_dir():
            files: list[Path] = []
            for f in path.rglob("*"):
                if f.is_file():
                    files.append(f)
                elif special is not None and (kind := _special_kind(f)):
                    special.append(f"{f} ({kind})")
            out.extend(str(f) for f in order_files(files))
        else:
            out.append(p)
    if special:
        special.sort()
    return out


def passed_over(paths: Sequence[str]) -> list[str]:
    """The FIFOs, sockets and devices in the input directories, which a read leaves out (`input_files`)."""
    special: list[str] = []
    input_files(paths, special)
    return special


def _special_kind(path: Path) -> str | None:
    """What a path that is neither a file nor a directory is (following links): a FIFO, a socket or a device;
    None for a directory, and for a broken link (`input_problem` stops the command on one)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return None


def label_of(name: str) -> str:
    """How a file is named in origins and messages."""
    return "<stdin>" if name == STDIN else name


class _Inflated(io.RawIOBase):
    """A gzip stream read one inflated piece at a time. GzipFile.read(n) gathers several pieces, and when the
    stream is cut short it raises and drops the ones it had: the lines before the cut would be lost."""

    def __init__(self, inner: io.BufferedReader) -> None:
        self._gzip = gzip.GzipFile(fileobj=inner)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._gzip.read1(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _GzipReader(io.BufferedReader):
    """A buffered (peekable) gzip stream that closes the file under it too."""

    def __init__(self, inner: io.BufferedReader) -> None:
        self._inner = inner
        super().__init__(_Inflated(inner), HEAD)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._inner.close()


def open_archive(name: str) -> io.BufferedReader:
    """A file (or stdin for `-`), decompressed when it is gzip: told by its magic bytes, not by its name. Gzip
    inside gzip (a log compressed twice, a Firehose object of gzipped CloudWatch subscription data) is
    inflated again, up to MAX_GZIP_LAYERS; every layer is streamed, so the readers' limits bound them all."""
    raw: Any = sys.stdin.buffer if name == STDIN else open(name, "rb", buffering=HEAD)  # noqa: SIM115
    buffered: io.BufferedReader = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, HEAD)
    try:
        for _ in range(MAX_GZIP_LAYERS):
            if buffered.peek(2)[:2] != GZIP_MAGIC:
                return buffered
            buffered = _GzipReader(buffered)
        if buffered.peek(2)[:2] != GZIP_MAGIC:
            return buffered
        raise gzip.BadGzipFile(f"gzip inside gzip more than {MAX_GZIP_LAYERS} layers deep")
    except BaseException:
        buffered.close()
        raise


class _Prefixed(io.RawIOBase):
    """Bytes already read from a stream, then the rest of the stream: its start, put back."""

    def __init__(self, prefix: bytes, rest: io.BufferedReader) -> None:
        self._prefix = memoryview(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:] if n < len(self._prefix) else memoryview(b"")  # the bytes let go
            return n
        data = self._rest.read1(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._rest.close()


class _Utf8From16(io.RawIOBase):
    """A UTF-16 stream with its byte order mark, read as UTF-8. A lone surrogate passes as the bytes UTF-8 would
    give it, which are not UTF-8: its line is rejected as in any other file. A stream that ends with half a
    character (an odd byte: a file cut short) hands on what comes before it as whole lines, then fails with
    CUT_UTF16, as a gzip stream cut short does: the cut is a reject naming the line after them."""

    def __init__(self, rest: io.BufferedReader) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-16")("surrogatepass")  # takes the BOM off
        self._rest = rest
        self._pending = memoryview(b"")
        self._last = "\n"  # the last character handed on
        self._cut = False  # ended with half a character: the next read fails

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if self._cut:
                raise EOFError(CUT_UTF16)
            data = self._rest.read1(HEAD)
            try:
                text = self._decoder.decode(data, final=not data)
            except UnicodeDecodeError:  # at the end: truncated data
                self._cut = True
                # the line that the cut left without its newline ends here, so that a reader takes it whole
                text = "" if self._last == "\n" else "\n"
            if text:
                self._last = text[-1]
            elif not data and not self._cut:
                break
            self._pending = memoryview(text.encode("utf-8", "surrogatepass"))
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._rest.close()


def head_of(stream: io.BufferedReader) -> tuple[bytes, io.BufferedReader]:
    """What format detection reads, and the stream to read the file from (from its start, after a UTF-8 BOM; a
    UTF-16 file, told by its byte order mark, as UTF-8).

    Usually the first HEAD bytes (or what a pipe had). When the first line starts a JSON value and does not end
    in them (an Event with a large body), the whole line, up to MAX_LINE_BYTES + 1 bytes: a line cut short would
    be taken for one JSON document, and its format guessed from keys that the event's body may hold."""
    if stream.peek(2)[:2] in UTF16_BOMS:
        stream = io.BufferedReader(_Utf8From16(stream), HEAD)
    if stream.peek(len(UTF8_BOM))[: len(UTF8_BOM)] == UTF8_BOM:
        stream.read(len(UTF8_BOM))  # what Windows tools write first is no part of the first record
    head = stream.peek(HEAD)[:HEAD]
    text = head.lstrip(b" \t\r\n")
    if text[:1] not in (b"{", b"[") or b"\n" in text:
        return head, stream
    start = stream.read(len(head) - len(text))  # blank lines, within the head
    first = start + stream.readline(MAX_LINE_BYTES + 1)
    return first, io.BufferedReader(_Prefixed(first, stream), HEAD)


def input_problem(paths: Sequence[str]) -> str | None:
    """Why these inputs cannot all be read, or None: a path that is missing (or a broken link, also within a
    directory), a directory that cannot be listed, or a file that cannot be read. Checked before a read starts,
    so that a mistyped path stops a command instead of leaving half its work done. Pipes and devices are not
    opened here."""
    for p in paths:
        if p == STDIN:
            if sys.stdin is None:  # started with file descriptor 0 closed
                return f"{STDIN}: standard input is closed"
            if paths.count(STDIN) > 1:  # the first read takes it all, and closes it
                return f"{STDIN}: standard input is given more than once, and can be read once"
            continue
        mode, problem = _mode_of(p)
        if problem is not None:
            return problem
        if stat.S_ISDIR(mode):
            problem = _directory_problem(p)
            if problem:
                return problem
        elif stat.S_ISREG(mode) and not os.access(p, os.R_OK):
            return f"{p}: Permission denied"
    return None


def _mode_of(path: str) -> tuple[int, str | None]:
    """A path's mode (following links), or why it has none: a missing path, a broken link or a loop of links."""
    try:
        return os.stat(path).st_mode, None
    except OSError as exc:
        broken = " (a broken symbolic link)" if os.path.islink(path) else ""
        return 0, f"{path}: {exc.strerror}{broken}"


def _directory_problem(top: str) -> str | None:
    """A file of the directory tree that cannot be read: without permission, or a link to nothing (a log rotated
    away) that reading the directory would pass over without a word. FIFOs, sockets and devices are no archive:
    the read leaves them out, and the command names them (`passed_over`)."""
    errors: list[OSError] = []
    for folder, _dirs, files in os.walk(top, onerror=errors.append):
        for name in files:  # os.walk lists broken links among the files
            path = os.path.join(folder, name)
            mode, problem = _mode_of(path)
            if problem is not None:
                return problem
            if stat.S_ISREG(mode) and not os.access(path, os.R_OK):
                return f"{path}: Permission denied"
    if errors:
        return f"{errors[0].filename}: {errors[0].strerror}"
    return None


def lines_of(stream: io.BufferedReader) -> Iterator[bytes]:
    """The lines of a stream, each at most MAX_LINE_BYTES + 1 bytes: a longer line comes as its first
    MAX_LINE_BYTES + 1 bytes without a newline (`is_overlong`), and its rest must be skipped (`skip_line`)."""
    return iter(line_reader(stream), b"")


def line_reader(stream: io.BufferedReader) -> Callable[[], bytes]:
    """`lines_of` one call at a time: the next line, b"" at the end."""
    return partial(stream.readline, MAX_LINE_BYTES + 1)


def is_overlong(line: bytes) -> bool:
    return len(line) > MAX_LINE_BYTES and not line.endswith(b"\n")


def skip_line(stream: io.BufferedReader) -> bool:
    """Read past the rest of an over-long line, keeping none of it: True at its end (or the file's), False when
    no end of line comes within MAX_SKIPPED_BYTES."""
    skipped = 0
    while skipped < MAX_SKIPPED_BYTES:
        chunk = stream.readline(_SKIP_CHUNK)
        if not chunk or chunk.endswith(b"\n"):
            return True
        skipped += len(chunk)
    return False


def inflate(data: bytes, limit: int) -> bytes | None:
    """gzip.decompress (every member) that stops at `limit` bytes of output: None if there are more."""
    out: list[bytes] = []
    size = 0
    while data:
        inflater = zlib.decompressobj(wbits=31)  # one gzip member
        chunk = inflater.decompress(data, limit + 1 - size)
        size += len(chunk)
        if size > limit or inflater.unconsumed_tail:
            return None
        if not inflater.eof:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")
        out.append(chunk)
        data = inflater.unused_data.lstrip(b"\0")  # gzip allows zero padding between members
    return b"".join(out)
