"""Fuzzing the archive readers and `replay`: files of real events mixed with poison, in every format (sniffed, and
forced, the right one or a wrong one), plain or gzip, cut short, damaged (encodings, BOM, NULs, stray bytes).

Every case: reading never raises and ends within the deadline; a plain apiserver log reads back exactly the
events that its lines give one by one, each once; the events of a well-formed file of any format are all read,
each once; replaying the file into a store (shared by the cases) stores exactly the alerts that a reference
pipeline finds in what was read, and no planted credential.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.store import AlertStore
from auditwatch.replay import replay
from detectors.errors import EventError
from detectors.events import AuditEvent, parse_body
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from ingest.archives import FORMATS, ArchiveStats, read_archives
from tests.support.fuzz import budget, case, ran_budget
from tests.support.fuzz_events import PLANTED_SECRETS, Item, batch_item, offset
from tests.support.fuzz_store import StoreWatch, reference_alerts

SHAPES = ("apiserver", "eventlist", "pretty", "cloudwatch", "cloudwatch-s3", "cloudwatch-subscription", "firehose",
          "cloudwatch-insights", "aks", "elastic")  # fmt: skip
FORMAT_OF = {"eventlist": "apiserver", "pretty": "apiserver", "firehose": "cloudwatch-subscription"}
DAMAGE = ("none", "none", "none", "gzip", "cut", "gzip-cut", "gzip-junk", "bom", "utf16", "crlf", "bytes", "nul")


def _line(item: Item) -> str:
    return item.text.decode("utf-8", errors="surrogateescape")


def shaped(shape: str, items: list[Item]) -> bytes:
    """The items written as a file of `shape` (items whose text is not UTF-8 go as it is in line shapes)."""
    texts = [i.text for i in items]
    if shape == "apiserver":
        return b"".join(t + b"\n" for t in texts)
    if shape == "eventlist":
        return b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[' + b",".join(texts) + b"]}\n"
    if shape == "pretty":
        return b"[\n  " + b",\n  ".join(texts) + b"\n]\n"
    if shape == "cloudwatch-s3":
        return b"".join(b"2026-11-20T09:12:03.151Z " + t + b"\n" for t in texts)
    messages = [_line(i) for i in items]
    if shape == "cloudwatch":
        events = [{"timestamp": 1795165923151, "eventId": str(n), "logStreamName": "kube-apiserver-audit-1",
                   "message": m} for n, m in enumerate(messages)]  # fmt: skip
        return _dumps({"events": events, "searchedLogStreams": []})
    if shape in ("cloudwatch-subscription", "firehose"):
        body = gzip.compress(_dumps({"messageType": "DATA_MESSAGE", "logGroup": "/aws/eks/prod/cluster",
                                     "logStream": "kube-apiserver-audit-1", "logEvents": [
                                         {"id": str(n), "timestamp": 1795165923151, "message": m}
                                         for n, m in enumerate(messages)]}))  # fmt: skip
        return gzip.compress(body) if shape == "firehose" else base64.b64encode(body) + b"\n"
    if shape == "cloudwatch-insights":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["@timestamp", "@message"])
        writer.writerows(["2026-11-20 09:12:03.151", m] for m in messages)
        return out.getvalue().encode("utf-8", errors="surrogateescape")
    if shape == "aks":
        return _dumps({"records": [{"category": "kube-audit", "time": "2026-11-20T09:12:03Z",
                                    "properties": {"log": m}} for m in messages]})  # fmt: skip
    return b"".join(_dumps({"_index": "logs-kubernetes.audit_logs", "_source": {"event": {"original": m}}}) + b"\n"
                    for m in messages)  # fmt: skip


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # a string holding stray bytes (surrogate escapes): written as those bytes, as damaged
        return json.dumps(value, ensure_ascii=False).encode("utf-8", errors="surrogateescape")


@st.composite
def damaged(draw: st.DrawFn, data: bytes, how: str) -> bytes:
    if how == "none":
        return data
    if how == "gzip":
        return gzip.compress(data)
    if how == "cut":
        return data[: offset(draw, len(data) - 1)]
    if how == "gzip-cut":
        packed = gzip.compress(data)
        return packed[: 2 + offset(draw, len(packed) - 3)]
    if how == "gzip-junk":
        return gzip.compress(data) + draw(st.sampled_from([b"\x00" * 7, b"junk", gzip.compress(b"{}\n")[:9]]))
    if how == "bom":
        return b"\xef\xbb\xbf" + data
    if how == "utf16":
        return data.decode("utf-8", errors="replace").encode(draw(st.sampled_from(["utf-16", "utf-16-le"])))
    if how == "crlf":
        return data.replace(b"\n", b"\r\n")
    at = offset(draw, len(data))
    if how == "nul":
        return data[:at] + b"\x00" * draw(st.integers(1, 3)) + data[at:]
    return data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]


@dataclass
class Replayed:
    pipeline: Pipeline
    reference: Pipeline
    watch: StoreWatch
    folder: Path


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    folder = tmp_path_factory.mktemp("fuzz-archives")
    store = AlertStore(f"sqlite:///{folder / 'replay.db'}")
    store.migrate()
    pipeline = Pipeline(load_rules(["builtin", "falco", "sigma"]))
    yield Replayed(pipeline, pipeline.fresh(), StoreWatch(store), folder)
    store.close()


def read_all(path: Path, fmt: str | None) -> tuple[list[AuditEvent], ArchiveStats]:
    stats = ArchiveStats()
    events: list[AuditEvent] = []
    for batch_events, _rejected in read_archives([str(path)], stats, fmt=fmt):
        events += batch_events
    return events, stats


def line_by_line(items: list[Item]) -> list[dict[str, Any]]:
    """What an apiserver log of these items gives, read one line at a time (copies of an event dropped)."""
    events: list[dict[str, Any]] = []
    seen: set[tuple[Any, Any, Any]] = set()
    for item in items:
        if b"\n" in item.text or b"\r" in item.text:
            continue  # not one line (never made so: items are compact JSON)
        try:
            parsed, _ = parse_body(item.text)
        except EventError:
            continue
        for event in parsed:
            key = (event.raw["auditID"], event.raw["stage"], event.raw.get("stageTimestamp"))
            if key not in seen:
                seen.add(key)
                events.append(event.raw)
    return events


FILES = budget("archives", 200)


def test_archives_of_valid_and_poison_records(replayed: Replayed) -> None:
    @settings(max_examples=FILES)
    @given(items=st.lists(batch_item(), min_size=1, max_size=6), shape=st.sampled_from(SHAPES),
           how=st.sampled_from(DAMAGE), forced=st.sampled_from([None, None, None, "right", *FORMATS]),
           data=st.data())  # fmt: skip
    def archives(items: list[Item], shape: str, how: str, forced: str | None, data: st.DataObject) -> None:
        path = replayed.folder / "archive"
        clean = shaped(shape, items)
        path.write_bytes(data.draw(damaged(clean, how)))
        fmt = FORMAT_OF.get(shape, shape) if forced == "right" else forced
        with case("archives", inputs=len(items)):
            check_archive(replayed, path, items, shape, how, fmt, hit_by_damage(clean, path.read_bytes()))

    with ran_budget("archives"):
        archives()


def hit_by_damage(clean: bytes, damaged_data: bytes) -> frozenset[str]:
    """The canaries planted at most 80 bytes after the first byte the damage changed (in the shape that makes
    them credentials: a key, a name, a prefix), when the damage changed bytes rather than the encoding."""
    at = next((i for i, (a, b) in enumerate(zip(clean, damaged_data, strict=False)) if a != b), None)
    if at is None:
        return frozenset()
    return frozenset(
        name for name, secret in PLANTED_SECRETS.items() if 0 <= clean.find(secret.encode(), at) - at <= 80
    )


def check_archive(
    replayed: Replayed, path: Path, items: list[Item], shape: str, how: str, fmt: str | None, excused: frozenset[str]
) -> None:
    events, stats = read_all(path, fmt)
    assert stats.events == len(events) and stats.files == 1
    keys = [(e.raw["auditID"], e.raw["stage"], e.raw.get("stageTimestamp")) for e in events]
    assert len(keys) == len(set(keys)), "an event was read twice"
    right_format = fmt is None or fmt == FORMAT_OF.get(shape, shape)
    if shape == "apiserver" and how in ("none", "gzip", "crlf") and right_format:
        assert [e.raw for e in events] == line_by_line(items)
    valid = [orjson.loads(i.text)["auditID"] for i in items if i.valid]
    if how in ("none", "gzip") and right_format:
        assert set(valid) <= {e.raw["auditID"] for e in events}, "a valid event of a well-formed file was lost"
    before = replayed.watch.totals()
    replay_stats = replay([str(path)], replayed.pipeline, store=replayed.watch.store, fmt=fmt)
    assert replay_stats.events == len(events)
    alerts, _failed = reference_alerts(replayed.reference, events)
    assert replay_stats.alerts == len(alerts)
    replayed.watch.check_stored({a.id for a in alerts}, before)
    replayed.watch.scan_new({a.id for a in alerts}, excused if how in ("bytes", "nul") else frozenset())


def test_nothing_credential_shaped_is_stored_by_replay(replayed: Replayed) -> None:
    replayed.watch.scan_all()
