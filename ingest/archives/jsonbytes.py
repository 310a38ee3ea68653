"""The bytes of JSON documents read a chunk at a time (`JsonBytes`): where a value ends, found by counting its
brackets outside strings (a regular expression per bracket: exact, but a few times slower than orjson, so used
where no cheaper cut is found), what was read past let go, and the lines counted on the way."""

from __future__ import annotations

import io
import re

from ingest.archives.converters import PAYLOAD_CAP
from ingest.archives.files import UNREADABLE

CHUNK_BYTES = 1024 * 1024
# Each pattern matches the empty string: `match` never gives None (hence the `type: ignore`s)
_WS = re.compile(rb"[ \t\r\n]*")
# Outside strings: up to the next bracket, or to a string not closed within the buffer
_RUN = re.compile(rb'(?:[^"\[\]{}]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+', re.S)
_IN_STRING = re.compile(rb'[^"\\]*+(?:\\.[^"\\]*+)*+', re.S)  # up to the closing quote (or a lone `\` at the end)
_SCALAR = re.compile(rb"[-+.0-9A-Za-z]*")
_SCALAR_STARTS = frozenset(b"-0123456789tfn")
QUOTE, COMMA, COLON, OPEN_OBJECT, OPEN_ARRAY, CLOSE_OBJECT, CLOSE_ARRAY = b'",:{[}]'
ENDS_INSIDE = "the file ends inside the document (cut short?)"


class Damaged(Exception):
    """The document cannot be read on from `pos`: why."""


class JsonBytes:
    """A stream's bytes: `_buf` holds what is not yet read past (from `_pos`), and what is kept from `_mark`."""

    def __init__(self, stream: io.BufferedReader, prefix: bytes, limit: int) -> None:
        self._stream = stream
        self._limit = limit  # the longest value kept
        self._buf = prefix
        self._pos = 0  # where reading has got to in `_buf`
        self._base = 0  # the bytes let go before `_buf`
        self._eof = False
        self._error: Exception | None = None  # met reading, raised once what was read before it is read
        self._moved = 0  # how far the last `_fill` moved indices into `_buf` back
        self._newlines = 0  # before `_buf[_counted]`
        self._counted = 0
        self._last = prefix[-1:]  # the last byte read
        self._mark: int | None = None  # `_buf` is kept from here (up to `limit`)
        self._mark_lost = False  # what was kept grew over `limit`
        self._too_long: bytes | None = None  # set by `_value_end`

    @property
    def offset(self) -> int:
        """The bytes read past."""
        return self._base + self._pos

    @property
    def line(self) -> int:
        """The line reached."""
        return self._line_at(self._pos)

    @property
    def stop_line(self) -> int:
        """The line where reading stopped (damage, a read error): where the value it could not read whole starts
        (a record's `{`), or, when it stopped between values, the line of the last byte before it that is not
        whitespace (a newline a cut leaves, or a UTF-16 cut adds, names no line of its own)."""
        if self._pos < len(self._buf) and self._buf[self._pos] not in b" \t\r\n":
            return self.line
        newlines, i = 0, self._pos
        while i > 0:
            piece = self._buf[max(0, i - 4096) : i]
            text = piece.rstrip(b" \t\r\n")
            newlines += piece.count(b"\n", len(text))
            if text:
                break
            i -= len(piece)
        return self.line - newlines

    @property
    def lines(self) -> int:
        """The lines of what was read: all of them once `records` is done."""
        return self._line_at(len(self._buf)) - (self._last == b"\n")

    def _value_end(self, keep: bool) -> int:
        """Where the JSON value at `pos` ends: its brackets counted outside strings, nothing else checked.

        `keep`: the value stays in `_buf` from `pos`, unless it is over the limit: then it is read past and
        `_too_long` holds its start. Otherwise `pos` moves along as it is read past."""
        self._too_long = None
        end = self._scan(keep)
        if keep and self._too_long is None and end - self._pos > self._limit:
            self._too_long = self._buf[self._pos : self._pos + PAYLOAD_CAP]
        return end

    def _scan(self, keep: bool) -> int:
        i = self._pos
        first = self._buf[i]
        if first in _SCALAR_STARTS:  # a number, true, false or null: up to a byte that cannot be in one
            while True:
                i = _SCALAR.match(self._buf, i).end()  # type: ignore[union-attr]
                if i < len(self._buf):
                    return i
                if keep and i - self._pos > self._limit:
                    keep = False
                    self._too_long = self._buf[self._pos : self._pos + PAYLOAD_CAP]
                if not keep:
                    self._pos = i
                if not self._fill(self._pos):
                    return i
                i -= self._moved
        if first not in b'{["':
            raise Damaged("expected a JSON value")
        depth = 0
        in_string = False
        while True:
            buf = self._buf
            n = len(buf)
            while i < n:
                if in_string:
                    i = _IN_STRING.match(buf, i).end()  # type: ignore[union-attr]
                    if i == n or buf[i] != QUOTE:
                        break  # the end of the buffer, or a `\` at it
                    i += 1
                    in_string = False
                    if depth == 0:
                        return i
                else:
                    c = buf[i]
                    i += 1
                    if c == QUOTE:
                        in_string = True
                        continue
                    if c == OPEN_OBJECT or c == OPEN_ARRAY:
                        depth += 1
                    else:  # the run stops only at brackets and quotes
                        depth -= 1
                        if depth == 0:
                            return i
                        if depth < 0:
                            raise Damaged("a closing bracket without its opening one")
                i = _RUN.match(buf, i).end()  # type: ignore[union-attr]
            if keep and i - self._pos > self._limit:
                keep = False
                self._too_long = buf[self._pos : self._pos + PAYLOAD_CAP]
            if not keep:
                self._pos = i
            if not self._fill(self._pos):
                raise Damaged(ENDS_INSIDE)
            i -= self._moved

    def _next(self) -> int | None:
        """The first byte at or after `pos` that is not whitespace (`pos` moved to it); None at the end."""
        while True:
            self._pos = _WS.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill(self._pos):
                return None

    def _ahead(self, size: int) -> None:
        """At least `size` bytes from `pos` in `_buf`, or what is left before the end of the stream or a read
        error: the error is kept for the next read, so that the values wholly read before it are read first."""
        try:
            while len(self._buf) - self._pos < size and self._fill(self._pos):
                pass
        except UNREADABLE as exc:
            self._error = exc

    def _fill(self, keep: int) -> bool:
        """Read on, letting go of what is before `keep` (and before `_mark`); False at the end of the stream.
        Indices into `_buf` move back by `_moved`: `_pos` and `_mark` are moved, the caller moves its own."""
        self._moved = 0
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._eof:
            return False
        if self._mark is not None:
            if len(self._buf) - self._mark > self._limit:
                self._mark, self._mark_lost = None, True
            else:
                keep = min(keep, self._mark)
        data = self._read(max(CHUNK_BYTES, len(self._buf) - keep))
        if not data:
            self._eof = True
            return False
        self._line_at(keep)
        self._base += keep
        self._buf = self._buf[keep:] + data
        self._last = data[-1:]
        self._moved = keep
        self._pos -= keep
        self._counted -= keep
        if self._mark is not None:
            self._mark -= keep
        return True

    def _read(self, size: int) -> bytes:
        """At least `size` bytes, or what is left; what was read before an error is handed on, the error raised
        by the next read (`read(size)` of a gzip stream would drop it)."""
        pieces: list[bytes] = []
        got = 0
        try:
            while got < size:
                piece = self._stream.read1(size - got)
                if not piece:
                    break
                pieces.append(piece)
                got += len(piece)
        except UNREADABLE as exc:
            if not pieces:
                raise
            self._error = exc
        return b"".join(pieces)

    def _line_at(self, i: int) -> int:
        """The number of the line that `_buf[i]` is on (from the last place asked about: never back)."""
        if i > self._counted:
            self._newlines += self._buf.count(b"\n", self._counted, i)
            self._counted = i
        return self._newlines + 1
