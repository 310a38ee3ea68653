"""apiserver log lines are decoded a batch at a time (their brackets found in one pass): the answers must be those
of reading each line on its own, whatever the lines hold and wherever the batches end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.events import copy_key
from detectors.limits import MAX_EVENT_DEPTH
from detectors.scope import route_key
from ingest.archives import ArchiveStats, read_archives
from ingest.archives.files import MAX_LINE_BYTES
from ingest.archives.records import BATCH_BYTES, Counters, read_records
from tests.support.events import exec_event, lease_event, scenario_events

Answer = tuple[list[tuple[str, Any]], list[tuple[str, str]], int]


def nested_lists(count: int) -> Any:
    value: Any = "x"
    for _ in range(count):
        value = [value]
    return value


def event_line(base: dict[str, Any], audit_id: int, extra: Any) -> bytes:
    event = {**base, "auditID": f"id-{audit_id}"}
    if extra is not None:
        event["extra"] = extra
    return orjson.dumps(event)


# What a log line may be: events (some with many brackets, nested or not, or brackets in strings), junk, blanks.
LINES = st.one_of(
    st.builds(event_line, st.sampled_from([exec_event(), lease_event()]), st.integers(0, 5), st.none()),
    st.builds(
        event_line,
        st.just(lease_event()),
        st.integers(0, 5),
        st.sampled_from(
            [
                [[]] * MAX_EVENT_DEPTH,  # many brackets, two levels deep
                nested_lists(MAX_EVENT_DEPTH - 1),  # with the event's own level, MAX_EVENT_DEPTH: within the limit
                nested_lists(MAX_EVENT_DEPTH),  # one level too deep
                "{[" * MAX_EVENT_DEPTH,  # brackets in a string only
            ]
        ),
    ),
    st.sampled_from([b"", b"   ", b"not json", b"[1, 2]", b'{"kind": "Other"}', b'{"kind": "Event"}', b"{[{[{"]),
)


def answers(path: Path) -> Answer:
    """Events (origin, raw) and rejected items (origin, reason) read from `path`, and the lines counted."""
    stats = ArchiveStats()
    events: list[tuple[str, Any]] = []
    rejected: list[tuple[str, str]] = []
    for evs, rej in read_archives([str(path)], stats, dedupe=False):
        events += [(e.origin, e.raw) for e in evs]
        rejected += [(r.origin, r.reason) for r in rej.kept]
    return events, rejected, stats.lines


def one_by_one(lines: list[bytes], whole: Path, tmp: Path) -> Answer:
    """What `answers` gives for each line read on its own (after the first line, as in the whole file, so that
    the file reads as lines), named as the line of the whole file."""
    events: list[tuple[str, Any]] = []
    rejected: list[tuple[str, str]] = []
    for number, text in enumerate(lines, start=1):
        single = tmp / f"line-{number}.log"
        single.write_bytes(lines[0] + text if number > 1 else text)
        at = f"{single}:{2 if number > 1 else 1}"
        evs, rej, _ = answers(single)
        events += [(f"{whole}:{number}" + o.removeprefix(at), raw) for o, raw in evs if o.startswith(at)]
        rejected += [(f"{whole}:{number}" + o.removeprefix(at), why) for o, why in rej if o.startswith(at)]
    return events, rejected, len(lines)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINES, max_size=40), last_newline=st.booleans())
def test_lines_read_in_batches_answer_as_each_line_read_alone(
    lines: list[bytes], last_newline: bool, tmp_path: Path
) -> None:
    # the first line an event, so that the file reads as lines (not as one pretty-printed JSON document)
    texts = [text + b"\n" for text in [event_line(exec_event(), 9, None), *lines]]
    if texts and not last_newline:
        texts[-1] = texts[-1][:-1]  # the file's last line without its newline (if it was empty: no line)
    texts = [text for text in texts if text]
    whole = tmp_path / "audit.log"
    whole.write_bytes(b"".join(texts))
    assert answers(whole) == one_by_one(texts, whole, tmp_path)


def test_an_overlong_line_inside_a_batch_keeps_the_numbers_of_the_lines_around_it(tmp_path: Path) -> None:
    assert MAX_LINE_BYTES > BATCH_BYTES  # the reader looks for an over-long line only once a batch is that large
    lines = [event_line(lease_event(), n, None) + b"\n" for n in range(40)]
    lines[20] = b'{"junk": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n'
    path = tmp_path / "audit.log"
    path.write_bytes(b"".join(lines))
    events, rejected, counted = answers(path)
    assert [origin for origin, _ in events] == [f"{path}:{n}" for n in range(1, 41) if n != 21]
    assert [raw["auditID"] for _, raw in events] == [f"id-{n}" for n in range(40) if n != 20]
    assert rejected == [(f"{path}:21", f"line longer than {MAX_LINE_BYTES} bytes")]
    assert counted == 40


def test_every_event_read_from_a_log_carries_its_route_key(tmp_path: Path) -> None:
    """The reader hands each event on with the routing key its validation read (the pipeline would read the five
    fields again); an event of an odd shape, judged by the slow path, has none and is routed from its fields."""
    shapes = [*scenario_events(), lease_event(), with_null_resource(exec_event())]
    events = [event | {"auditID": f"route-{i}"} for i, event in enumerate(shapes)]
    odd = exec_event() | {"auditID": "odd", "responseStatus": None}  # null: the fast path does not decide
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in [*events, odd]))
    read = [event for batch, _ in read_archives([str(log)], ArchiveStats()) for event in batch]
    assert [event.raw for event in read] == [*events, odd]
    assert all(event.route is not None and event.route == route_key(event.raw) for event in read[:-1])
    assert read[-1].route is None


def with_null_resource(event: dict[str, Any]) -> dict[str, Any]:
    return event | {"objectRef": {**event["objectRef"], "resource": None}}


def batches_and_keys(path: Path) -> list[tuple[list[str], list[str] | None]]:
    """Per batch of the log at `path`: its events' `copy_key`s, and the copy keys the reader handed on with it."""
    counters = Counters()
    found: list[tuple[list[str], list[str] | None]] = []
    with path.open("rb") as stream:
        for events, _ in read_records(stream, str(path), "apiserver", False, counters, 0):  # type: ignore[arg-type]
            found.append(([copy_key(event.raw) for event in events], counters.copy_keys))
    return found


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINES, max_size=40))
def test_the_copy_keys_handed_on_with_a_batch_are_its_events_own(lines: list[bytes], tmp_path: Path) -> None:
    """The reader's Deduper takes a batch's copy keys from the reader when it found them while validating: they
    must be `copy_key`'s, event for event, or the Deduper would drop other events than copies."""
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(text + b"\n" for text in [event_line(exec_event(), 9, None), *lines]))
    for keys, handed_on in batches_and_keys(log):
        assert handed_on is None or handed_on == keys


def test_a_log_of_valid_events_hands_on_every_copy_key(tmp_path: Path) -> None:
    shapes = [*scenario_events(), lease_event(), with_null_resource(exec_event())]
    events = [event | {"auditID": f"copy-{i}\x1fodd"} for i, event in enumerate(shapes)]  # any auditID goes
    log = tmp_path / "audit.log"
    log.write_bytes(b"".join(orjson.dumps(event) + b"\n\n" for event in [*events, *events[:5]]))
    found = batches_and_keys(log)
    assert [handed_on for _, handed_on in found] == [keys for keys, _ in found]
    assert sum(len(keys) for keys, _ in found) == len(events) + 5
    # a batch with an event judged by the slow path has none: the Deduper computes them
    odd = exec_event() | {"auditID": "odd", "responseStatus": None}
    log.write_bytes(orjson.dumps(lease_event()) + b"\n" + orjson.dumps(odd) + b"\n")
    assert batches_and_keys(log) == [([copy_key(lease_event()), copy_key(odd)], None)]


def test_copies_are_dropped_across_files_of_any_format(tmp_path: Path) -> None:
    """Copy keys handed on with an apiserver file's batches are no later file's: a file of another format after
    it (whose reader hands on none) still has its own copies dropped, and only them."""
    events = [lease_event() | {"auditID": f"id-{n}"} for n in range(40)]
    log = tmp_path / "a-audit.log"
    log.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
    document = tmp_path / "b-list.json"
    copies = [*events[30:], *events[30:], lease_event() | {"auditID": "new"}]  # 10 copies of log lines, 10 twice
    listed = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": copies}
    document.write_bytes(orjson.dumps(listed, option=orjson.OPT_INDENT_2))  # read whole, not as lines
    stats = ArchiveStats()
    read = [event.raw["auditID"] for batch, _ in read_archives([str(log), str(document)], stats) for event in batch]
    assert read == [*(f"id-{n}" for n in range(40)), "new"]
    assert stats.duplicates == 20
