"""Replay's shortcuts give what the general path gives: a fresh pipeline fed by the reader skips its own look-up
of copies (the reader drops them already), and the reader's fast path for apiserver lines accepts and rejects as
`parse_body` does, line for line."""

from __future__ import annotations

from pathlib import Path

import orjson

from auditwatch.replay import ReplayStats, replay
from detectors.alerts import Alert
from detectors.events import AuditEvent, parse_body
from detectors.pipeline import DEDUPE_WINDOW, Pipeline
from detectors.registry import load_rules
from ingest.archives import ArchiveStats, read_archives
from ingest.archives.reader import Deduper
from tests.support.events import scenario_events
from tests.support.paths import SCENARIO


def alerts_by(path: Path, pipeline: Pipeline, *, general: bool) -> tuple[list[tuple[str, str, str, str]], ReplayStats]:
    found: list[Alert] = []
    keep = (lambda event: event) if general else None  # a transform takes the pipeline's own look-up of copies
    stats = replay([str(path)], pipeline, emit=found.append, transform=keep, last_use=True)
    return [(a.rule_id, a.audit_id, a.stage, a.message) for a in found], stats


def test_the_reader_remembers_more_events_than_the_pipeline() -> None:
    assert Deduper().generation >= DEDUPE_WINDOW  # what lets replay skip the pipeline's look-up


def test_a_fresh_pipeline_without_its_look_up_of_copies_finds_the_same_alerts(tmp_path: Path) -> None:
    lines = SCENARIO.read_bytes().splitlines()
    path = tmp_path / "copies.jsonl"
    path.write_bytes(b"\n".join(lines + lines[::3] + lines[:50]) + b"\n")  # copies near and far
    pipeline = Pipeline(load_rules(["builtin"]))
    fast, fast_stats = alerts_by(path, pipeline.fresh(), general=False)
    general, general_stats = alerts_by(path, pipeline.fresh(), general=True)
    assert fast == general and fast
    assert fast_stats.duplicates == general_stats.duplicates > 0


def test_a_pipeline_used_again_remembers_what_it_replayed(tmp_path: Path) -> None:
    path = tmp_path / "twice.jsonl"
    path.write_bytes(SCENARIO.read_bytes())
    pipeline = Pipeline(load_rules(["builtin"]))
    first = replay([str(path)], pipeline)
    assert first.alerts and pipeline.remembers_events
    assert replay([str(path)], pipeline).alerts == 0  # every event a copy of one it saw


def test_a_pipeline_that_saw_events_before_keeps_its_look_up(tmp_path: Path) -> None:
    raws = scenario_events()
    path = tmp_path / "again.jsonl"
    path.write_bytes(b"".join(orjson.dumps(raw) + b"\n" for raw in raws))
    pipeline = Pipeline(load_rules(["builtin"]))
    for raw in raws:
        pipeline.process(AuditEvent(raw))
    assert pipeline.remembers_events
    found, _ = alerts_by(path, pipeline, general=False)
    assert found == []  # every event is a copy of one it saw


def test_the_reader_accepts_and_rejects_each_line_as_parse_body_does(tmp_path: Path) -> None:
    good = SCENARIO.read_bytes().splitlines()[:40]
    event = orjson.loads(good[0])
    odd = [
        b"", b"   ", b"\x0b", b"not json", b"[1, 2]", b"{}", b'{"kind": "EventList", "items": []}',
        orjson.dumps({**event, "stage": 7}), orjson.dumps({**event, "kind": None}), orjson.dumps({**event, "kind": 1}),
        orjson.dumps({k: v for k, v in event.items() if k != "kind"}), b"[" * 150 + b"]" * 150,
        orjson.dumps({**event, "deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}),
        orjson.dumps({**event, "deep": orjson.loads(b"[" * 120 + b"]" * 120)}),
        orjson.dumps({"kind": "EventList", "items": [event, {**event, "verb": 1}]}),
    ]  # fmt: skip
    lines = [line for pair in zip(good, odd + good[len(odd) :], strict=False) for line in pair]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    stats = ArchiveStats()
    read = [(e.origin, e.raw) for events, _ in read_archives([str(path)], stats, dedupe=False) for e in events]
    rejected = [(r.origin, r.reason) for events, rej in read_archives([str(path)], ArchiveStats(), dedupe=False)
                for r in rej.kept]  # fmt: skip
    expected_events, expected_rejects = [], []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        origin = f"{path}:{lineno}"
        try:
            events, rejects = parse_body(line, origin=origin)
        except Exception as exc:  # noqa: BLE001 - the line as a whole is not audit data: one reject
            expected_rejects.append((origin, str(exc)))
            continue
        expected_events += [(e.origin, e.raw) for e in events]
        expected_rejects += [(r.origin, r.reason) for r in rejects.kept]
    assert read == expected_events
    assert [origin for origin, _ in rejected] == [origin for origin, _ in expected_rejects]
    assert stats.events == len(expected_events)
