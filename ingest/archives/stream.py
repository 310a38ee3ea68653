"""A JSON document read as a stream: each record of its record array (`.events[]`, `.items[]`...: `RECORD_ARRAYS`)
decoded on its own and converted as the converter of the whole document converts it, with the same origin.

The bytes are read a chunk at a time and let go once read past: memory holds about the largest record, at most
`limit` bytes (a longer record is a reject, read past without being kept). The document's other members
(CloudWatch's `searchedLogStreams`, Elastic's `took`), before or after the array, are read past, and judged as
`outline` says: a document is kept until its record array starts (up to `limit`), so that one without an array
is converted whole, and one whose members before the array make it no list of records (an EventList of another
apiVersion) is judged by the converter; the members after the array are kept (up to `limit` of them, a longer
one left out) and judged once it is read; a member named as the array again is a reject. Documents one after
another (`}{`) are read in turn, each as the first.

Where a record ends: `jsonbytes` counts brackets outside strings (exact, a regular expression per bracket,
but a few times slower than orjson). Before it, an object is cut where the bytes around the last cut found
(`},\\n    {"logStreamName"`) occur again, within a few times the last record's size, and the piece is
taken when orjson decodes it whole: a JSON value ends where it ends, whatever follows, so a piece that is one
value is the record (or the document, of a format without a record array: one with an array is walked, so
that its members are judged where they stand). No byte is read more than a few times: the cost is linear in the
document's size.

A record that is not JSON but whose end is found is rejected alone. Damage that leaves no way to the next
record (junk between records, a cut file, a bracket missing) is one reject at its file:line (`stop_line`: a
cut inside a record names the line where that record starts; a read error is named there too, by `records`), and
the rest of the file is not read; the records before it are kept.
"""

from __future__ import annotations

import io
from collections.abc import Generator, Iterator
from typing import Any

import orjson

from ingest.archives.converters import (
    CONVERTERS,
    PAYLOAD_CAP,
    RECORD_ARRAYS,
    ItemConverter,
    RecordCollector,
    malformed_json,
)
from ingest.archives.jsonbytes import (
    CLOSE_ARRAY,
    CLOSE_OBJECT,
    COLON,
    COMMA,
    ENDS_INSIDE,
    OPEN_ARRAY,
    OPEN_OBJECT,
    QUOTE,
    Damaged,
    JsonBytes,
)
from ingest.archives.outline import convert_document, late_reason

# (convert, item, the document's origin, the record's index): `convert(item, origin, index, out)`
Record = tuple[ItemConverter, Any, str, int]
_LEAD = 24  # bytes of the next record's start that a guessed cut holds
_SLACK = 256
_MISSED = object()


class _Reject:
    """A converter that rejects its item (the start of the bytes that could not be read) for `reason`."""

    __slots__ = ("reason", "suffix")

    def __init__(self, reason: str, suffix: str = "") -> None:
        self.reason = reason
        self.suffix = suffix

    def __call__(self, payload: Any, origin: str, n: int, out: RecordCollector) -> None:
        out.reject(origin + self.suffix.format(n), self.reason, payload)


def _merged(probe: RecordCollector, _origin: str, _n: int, out: RecordCollector) -> None:
    out.merge(probe)


class _Cut:
    """Where the last two values (records, or documents) met, found by scanning: the bytes from the first's `}`
    to the start of the second (`between` of them before its `{`); and how far to look for them again."""

    __slots__ = ("between", "text", "window")

    def __init__(self) -> None:
        self.text = b""
        self.between = 0
        self.window = 0


class DocumentReader(JsonBytes):
    """Reads the records of one file read as JSON documents (`records`), counting its lines (`line`)."""

    def __init__(self, stream: io.BufferedReader, prefix: bytes, label: str, fmt: str, limit: int) -> None:
        super().__init__(stream, prefix, limit)
        self._label = label
        self._array = RECORD_ARRAYS.get(fmt)
        self._whole: ItemConverter = lambda doc, origin, _n, out: convert_document(doc, origin, fmt, out)
        self._convert = CONVERTERS.get(fmt, CONVERTERS["apiserver"])  # a document judged on some of its members
        self._records = _Cut()
        self._documents = _Cut()
        self._head = b""  # the document up to its record array, while its records are read
        self._late: list[bytes] | None = None  # what follows the array (members, `}`s), when it is judged
        self._late_size = 0

    def records(self) -> Iterator[Record]:
        """The records of the documents, and a reject where damage ends the file."""
        try:
            c = self._next()
            while c is not None:
                origin = f"{self._label}:{self.line}"
                start = self._base + self._pos
                # a document with a record array is walked, never guessed: its members are judged where they stand
                doc = self._guessed(self._documents) if c == OPEN_OBJECT and self._array is None else _MISSED
                if doc is not _MISSED:
                    yield self._whole, doc, origin, 0
                    self._pos += self._documents.between
                    c = self._buf[self._pos]
                    continue
                if self._array is not None and c == OPEN_ARRAY:
                    yield from self._items(origin, self._array.listed, self._array.listed_suffix)
                elif self._array is not None and c == OPEN_OBJECT:
                    self._mark, self._mark_lost = self._pos, False
                    found = yield from self._members(origin, 0)
                    late = self._judged_late(origin) if found else self._kept(origin)
                    if late is not None:
                        yield late
                else:
                    yield self._value(origin)
                buf, end = self._buf, self._pos
                self._documents.window = min(4 * (self._base + end - start) + _SLACK, self._limit)
                c = self._next()
                self._learn(self._documents, buf, end, c)
        except Damaged as exc:
            payload = self._buf[self._pos : self._pos + PAYLOAD_CAP]
            reason = f"malformed JSON: {exc}; the rest of the file is not read"
            yield _Reject(reason), payload, f"{self._label}:{self.stop_line}", 0

    # --- the document's structure -----------------------------------------------------------------------------

    def _members(self, origin: str, level: int) -> Generator[Record, None, bool]:
        """Read past the object at `pos`, the records of the record array when it is found at this level of its
        path (or deeper); whether it was. Once it was, the members after it are kept to be judged (`_late`), and
        one of its name again is a reject."""
        assert self._array is not None
        path = self._array.path
        last = level == len(path) - 1
        found = False
        self._pos += 1
        c = self._next()
        if c == CLOSE_OBJECT:
            self._pos += 1
            return False
        while True:
            if c != QUOTE:
                raise Damaged("expected a member name" if c is not None else ENDS_INSIDE)
            line = self.line
            end = self._value_end(keep=True)
            text = self._buf[self._pos : end]
            name = self._decoded(end, "member name")
            if self._next() != COLON:
                raise Damaged("expected ':' after a member name")
            self._pos += 1
            c = self._next()
            if c is None:
                raise Damaged(ENDS_INSIDE)
            if name != path[level]:
                self._member(text, keep=found)
            elif found:
                yield self._twice(name, f"{self._label}:{line}")
            elif c == (OPEN_ARRAY if last else OPEN_OBJECT):
                found = True
                if last:
                    yield from self._array_of(origin)
                else:
                    found = yield from self._members(origin, level + 1)
            else:
                self._pos = self._value_end(keep=False)
            c = self._next()
            if c == COMMA:
                self._pos += 1
                c = self._next()
            elif c == CLOSE_OBJECT:
                self._pos += 1
                if found and self._late is not None:
                    self._late.append(b"}")
                return found
            else:
                raise Damaged("expected ',' or '}' after a member" if c is not None else ENDS_INSIDE)

    def _member(self, name: bytes, keep: bool) -> None:
        """Read past the value at `pos`; after the record array (`keep`), it is kept for `_judged_late`, unless
        what is kept would grow over the limit (it is then not judged)."""
        if not keep or self._late is None:
            self._pos = self._value_end(keep=False)
            return
        end = self._value_end(keep=True)
        if self._too_long is None and self._late_size + end - self._pos <= self._limit:
            self._late.append(b"," + name + b":" + self._buf[self._pos : end])
            self._late_size += len(self._late[-1])
        self._pos = end

    def _twice(self, name: str, origin: str) -> Record:
        """A member named as the record array, or an object on its path, after it (a duplicate name): read past,
        a reject (`outline`)."""
        assert self._array is not None
        payload = self._buf[self._pos : self._pos + PAYLOAD_CAP]
        self._pos = self._value_end(keep=False)
        reason = f"a second member {name!r} in one object (a duplicate name): not read, the first is {self._array.jq}"
        return _Reject(reason), payload, origin, 0

    def _judged_late(self, origin: str) -> Record | None:
        """The reject of a document whose members after its record array make it no list of records (`outline`),
        or None."""
        assert self._array is not None
        head, late, self._head, self._late, self._late_size = self._head, self._late, b"", None, 0
        if late is None or all(piece == b"}" for piece in late):  # nothing after the array: judged before it
            return None
        text = head + b"[]" + b"".join(late)
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise Damaged(f"a member after the record array ({self._array.jq}) is not JSON") from None
        probe = RecordCollector()
        self._convert(doc, origin, probe)
        reason = late_reason(self._array, probe)
        return None if reason is None else (_Reject(reason), doc, origin, 0)

    def _array_of(self, origin: str) -> Iterator[Record]:
        """The record array at `pos`: its records, unless what the document held before it makes it no list of
        records for the converter (judged on the document so far, its array empty)."""
        assert self._array is not None
        mark, self._mark = self._mark, None
        if mark is not None and self._pos - mark <= self._limit:
            head = self._buf[mark : self._pos] + b"[]" + b"}" * len(self._array.path)
            try:
                doc = orjson.loads(head)
            except orjson.JSONDecodeError as exc:
                raise Damaged(malformed_json(exc, head).removeprefix("malformed JSON: ")) from None
            probe = RecordCollector()
            self._convert(doc, origin, probe)
            if probe:
                yield _merged, probe, origin, 0
                self._pos = self._value_end(keep=False)
                return
            self._head, self._late = self._buf[mark : self._pos], []  # the members after the array are judged
        yield from self._items(origin, self._array.item, self._array.suffix)

    def _items(self, origin: str, convert: ItemConverter, suffix: str) -> Iterator[Record]:
        """The records of the array at `pos`, each converted by `convert`."""
        self._pos += 1
        c = self._next()
        if c == CLOSE_ARRAY:
            self._pos += 1
            return
        n = 0
        while True:
            if c is None:
                raise Damaged(ENDS_INSIDE)
            reject, item, scanned = self._record(suffix)
            yield reject or convert, item, origin, n
            n += 1
            if not scanned:  # cut before the bytes between it and the next record
                self._pos += self._records.between
                continue
            buf, end = self._buf, self._pos
            c = self._next()
            if c == COMMA:
                self._pos += 1
                c = self._next()
                self._learn(self._records, buf, end, c)
            elif c == CLOSE_ARRAY:
                self._pos += 1
                return
            else:
                raise Damaged("expected ',' or ']' after a record" if c is not None else ENDS_INSIDE)

    def _record(self, suffix: str) -> tuple[_Reject | None, Any, bool]:
        """The record at `pos`: (None, the record decoded) or (its reject, the start of its text); and whether its
        end was found by scanning."""
        start = self._pos
        if self._buf[start] == OPEN_OBJECT:
            item = self._guessed(self._records)
            if item is not _MISSED:
                self._records.window = min(4 * (self._pos - start) + _SLACK, self._limit)
                return None, item, False
        end = self._value_end(keep=True)
        if self._too_long is not None:
            self._pos = end
            return _Reject(f"a record longer than {self._limit} bytes", suffix), self._too_long, True
        start = self._pos
        self._records.window = min(4 * (end - start) + _SLACK, self._limit)
        text = self._buf[start:end]
        self._pos = end
        try:
            return None, orjson.loads(text), True
        except orjson.JSONDecodeError as exc:
            return _Reject(malformed_json(exc, text), suffix), text[:PAYLOAD_CAP], True

    def _guessed(self, cut: _Cut) -> Any:
        """The value at `pos` cut where the last cut's bytes occur again, within its window, when orjson decodes
        that piece whole; else _MISSED. The cut ends with the start of the next value: that one is there too."""
        if not cut.text:
            return _MISSED
        self._ahead(cut.window)
        start = self._pos
        at = self._buf.find(cut.text, start, start + cut.window)
        if at < 0:
            return _MISSED
        try:
            item = orjson.loads(self._buf[start : at + 1])
        except orjson.JSONDecodeError:
            return _MISSED
        self._pos = at + 1
        return item

    def _learn(self, cut: _Cut, buf: bytes, end: int, c: int | None) -> None:
        """Keep where a value that ended at `end` and the next one, at `pos`, met (when both are objects, and no
        read came between)."""
        if self._buf is buf and buf[end - 1] == CLOSE_OBJECT and c == OPEN_OBJECT:
            cut.text = buf[end - 1 : self._pos + 1 + _LEAD]
            cut.between = self._pos - end

    def _kept(self, origin: str) -> Record:
        """A document read past without finding its record array: converted whole, as kept."""
        mark, self._mark = self._mark, None
        if mark is None or self._pos - mark > self._limit:
            assert self._array is not None
            reason = f"a JSON document longer than {self._limit} bytes without a record array ({self._array.jq})"
            return _Reject(reason), None, origin, 0
        return self._decoded_value(self._buf[mark : self._pos], origin)

    def _value(self, origin: str) -> Record:
        """A document of a format without a record array (or no object or array), converted whole."""
        end = self._value_end(keep=True)
        if self._too_long is not None:
            self._pos = end
            return _Reject(f"a JSON document longer than {self._limit} bytes"), self._too_long, origin, 0
        text = self._buf[self._pos : end]
        self._pos = end
        return self._decoded_value(text, origin)

    def _decoded_value(self, text: bytes, origin: str) -> Record:
        try:
            return self._whole, orjson.loads(text), origin, 0
        except orjson.JSONDecodeError as exc:
            return _Reject(malformed_json(exc, text)), text[:PAYLOAD_CAP], origin, 0

    def _decoded(self, end: int, what: str) -> Any:
        """The value from `pos` to `end`, decoded (`pos` moved to `end`); damage if it is not JSON."""
        if self._too_long is not None:
            raise Damaged(f"a {what} longer than {self._limit} bytes")
        text = self._buf[self._pos : end]
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise Damaged(f"{what}: {malformed_json(exc, text)}") from None
        self._pos = end
        return value
