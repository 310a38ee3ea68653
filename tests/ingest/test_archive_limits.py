"""Reading archives costs at most a small multiple of the input: capped lines and documents (also inflated
ones), capped rejects; and no input crashes a reader by its shape."""

from __future__ import annotations

import base64
import gzip
import os
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.events import MAX_KEPT_REJECTED, AuditEvent, Rejected
from detectors.limits import MAX_EVENT_DEPTH
from detectors.redact import TRUNCATED
from ingest.archives import ArchiveStats, detect_format, read_archives
from ingest.archives.files import MAX_DOCUMENT_BYTES, MAX_LINE_BYTES, MAX_SKIPPED_BYTES, inflate
from ingest.archives.gke import gke_event
from ingest.archives.normalise import elastic_event, micro_time
from ingest.kafka import DEAD_LETTER_PAYLOAD_BYTES, MAX_RECORD_BYTES, dead_letter
from tests.support.archives import subscription_message
from tests.support.cli import clean_env
from tests.support.events import exec_event, lease_event
from tests.support.paths import PYTHON, ROOT


def read(*paths: Path | str, fmt: str | None = None) -> tuple[list[AuditEvent], list[Rejected], ArchiveStats]:
    stats = ArchiveStats()
    events: list[AuditEvent] = []
    rejected: list[Rejected] = []
    for evs, rej in read_archives([str(p) for p in paths], stats, fmt=fmt):
        events.extend(evs)
        rejected.extend(rej.kept)
    return events, rejected, stats


def line(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event) + b"\n"


def zeros_gzip(path: Path, size: int, prefix: bytes = b"") -> None:
    """A gzip file of `prefix` and `size` zero bytes, written without holding them."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1024 * 1024)
    with path.open("wb") as out:
        out.write(deflate.compress(prefix))
        for _ in range(size // len(chunk)):
            out.write(deflate.compress(chunk))
        out.write(deflate.flush())


def test_an_overlong_line_is_rejected_skipped_and_the_file_read_on(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with path.open("wb") as out:
        out.write(line(exec_event()))
        out.write(b'{"junk": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n')
        out.write(line(lease_event()))
    events, rejected, stats = read(path)
    assert [e.origin for e in events] == [f"{path}:1", f"{path}:3"]
    assert [(r.origin, r.reason) for r in rejected] == [(f"{path}:2", f"line longer than {MAX_LINE_BYTES} bytes")]
    assert rejected[0].payload.startswith('{"junk": "xxx') and len(rejected[0].payload) <= 4096
    assert stats.lines == 3


def test_a_line_exactly_at_the_limit_is_read(tmp_path: Path) -> None:
    event = exec_event()
    text = orjson.dumps(event)
    event["padding"] = "x" * (MAX_LINE_BYTES - len(text) - len(b',"padding":""'))
    path = tmp_path / "edge.log"
    path.write_bytes(line(event))
    assert len(path.read_bytes()) == MAX_LINE_BYTES + 1  # with its newline
    events, rejected, _ = read(path)
    assert not events and "more than the limit" in rejected[0].reason  # read, then over the event size limit


def peak_rss_kib(pid: int) -> int:
    """The process's own high-water RSS (VmHWM, per address space: unlike ru_maxrss, which on Linux starts from
    the RSS of the parent that forked it, here a pytest process of a gigabyte or more), 0 once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def run_and_measure(args: list[str], tmp_path: Path, timeout_s: float) -> tuple[int, str, int, float]:
    """Run `auditwatch ARGS` (output to files): its exit status, stderr, own peak RSS (KiB) and time taken."""
    started = time.monotonic()
    with (tmp_path / "out").open("wb") as out, (tmp_path / "err").open("wb") as err:
        proc = subprocess.Popen([PYTHON, "-m", "auditwatch.cli", *args], cwd=ROOT, env=clean_env(), stdout=out,
                                stderr=err)  # fmt: skip
    peak = 0
    while True:
        peak = max(peak, peak_rss_kib(proc.pid))  # read while it runs: the mark is gone with the process
        pid, status, _usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() - started > timeout_s:
            proc.kill()
            proc.wait()
            raise AssertionError(f"auditwatch {' '.join(args)} still running after {timeout_s} s")
        time.sleep(0.02)
    return proc.returncode, (tmp_path / "err").read_text(errors="replace"), peak, time.monotonic() - started


@pytest.mark.parametrize("command", ["replay", "convert"])
def test_dev_zero_ends_promptly_with_a_reason_and_bounded_memory(command: str, tmp_path: Path) -> None:
    output = ["--output", "-"] if command == "replay" else []  # (else replay stores into ./auditwatch.db)
    _, err, rss_kib, took = run_and_measure([command, "/dev/zero", *output], tmp_path, timeout_s=120)
    assert "line longer than" in err and "the rest of the file is not read" in err, err
    assert took < 60
    assert rss_kib < 400 * 1024, f"peak RSS {rss_kib // 1024} MiB"


def test_a_gzip_bomb_of_one_endless_line_stops_at_the_skip_limit(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.log.gz"
    zeros_gzip(bomb, 1024 * 1024 * 1024)  # 1 GiB inflated, about 1 MiB on disk
    assert bomb.stat().st_size < 2 * 1024 * 1024
    started = time.monotonic()
    events, rejected, _ = read(bomb)
    assert time.monotonic() - started < 60
    assert not events
    assert [r.reason for r in rejected] == [
        f"line longer than {MAX_LINE_BYTES} bytes, and no end of line in the next {MAX_SKIPPED_BYTES} bytes: "
        "the rest of the file is not read"
    ]


def test_a_gzip_bomb_read_as_one_document_is_one_reject_where_its_junk_starts(tmp_path: Path) -> None:
    bomb = tmp_path / "export.json.gz"
    zeros_gzip(bomb, MAX_DOCUMENT_BYTES + 1024 * 1024, prefix=b'{\n "events": [\n')
    assert detect_format(gzip.open(bomb).read(65536))[1]  # a whole document
    events, rejected, _ = read(bomb)
    assert not events
    assert [(r.origin, r.reason) for r in rejected] == [
        (f"{bomb}:3", "malformed JSON: expected a JSON value; the rest of the file is not read")]  # fmt: skip


def test_concatenated_documents_are_read_in_time_linear_in_their_size(tmp_path: Path) -> None:
    # as Firehose writes records (`}{`); every 100th on a line of its own, whose number the origin gives
    event = lease_event()
    docs = [orjson.dumps(event | {"auditID": f"id-{n}"}) for n in range(20_000)]
    path = tmp_path / "firehose.json"
    path.write_bytes(b"".join(doc + (b"\n" if n % 100 == 99 else b"") for n, doc in enumerate(docs)))
    started = time.monotonic()
    events: list[AuditEvent] = []
    for batch, _rejected in read_archives([str(path)], ArchiveStats()):
        events.extend(batch)
        assert time.monotonic() - started < 20, f"{len(events)} events read in 20 s"  # counting lines from 0 each time
    assert len(events) == len(docs)
    assert events[99].origin == f"{path}:1" and events[100].origin == f"{path}:2"
    assert events[-1].origin == f"{path}:200"


def test_inflate_stops_at_its_limit() -> None:
    data = gzip.compress(b"a" * 1000) + gzip.compress(b"b" * 1000)
    assert inflate(data, 2000) == b"a" * 1000 + b"b" * 1000
    assert inflate(data, 1999) is None
    assert inflate(gzip.compress(bytes(50_000_000)), 1_000_000) is None


def test_a_subscription_record_that_inflates_too_far_is_rejected(tmp_path: Path) -> None:
    record = base64.b64encode(gzip.compress(b" " * (MAX_DOCUMENT_BYTES + 10))).decode()
    path = tmp_path / "firehose.txt"
    path.write_text(record + "\n")
    events, rejected, _ = read(path, fmt="cloudwatch-subscription")
    assert not events and "larger than" in rejected[0].reason


def test_junk_lines_keep_the_first_rejects_and_count_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "junk.log"
    path.write_bytes(b"0\n" * 10_000 + line(exec_event()))
    stats = ArchiveStats()
    kept = 0
    for _, rejected in read_archives([str(path)], stats):
        kept += len(rejected.kept)
    assert (stats.rejected, stats.events) == (10_000, 1)
    assert kept <= 10_000 and len(stats.rejected_examples) == 20
    whole = tmp_path / "junk.json"
    whole.write_bytes(b"[\n" + b",".join([b"0"] * 10_000) + b"\n]")
    stats = ArchiveStats()
    batches = [rejected for events, rejected in read_archives([str(whole)], stats) if not events]
    assert (stats.rejected, stats.events) == (10_000, 0)  # a document's records are read in batches, as lines are
    assert all(len(rejected.kept) <= MAX_KEPT_REJECTED for rejected in batches) and len(batches) > 1


def test_poisoned_valid_json_lines_are_rejected_and_good_lines_kept(tmp_path: Path) -> None:
    poisons = [
        exec_event() | {"stageTimestamp": "0001-01-01T00:00:00+14:00"},
        exec_event() | {"objectRef": {"resource": ["pods"]}},
        exec_event() | {"stage": {"a": 1}},
    ]
    path = tmp_path / "audit.log"
    deep = b"[" * 1000 + b"]" * 1000
    path.write_bytes(line(exec_event()) + b"".join(line(p) for p in poisons) + deep + b"\n" + line(lease_event()))
    events, rejected, _ = read(path)
    assert [e.origin for e in events] == [f"{path}:1", f"{path}:6"]
    assert [r.origin for r in rejected] == [f"{path}:2", f"{path}:3", f"{path}:4", f"{path}:5#[0]"]
    assert "is outside the years" in rejected[0].reason and "got list" in rejected[1].reason


def test_a_line_nested_past_the_parsers_limit_is_rejected_as_too_deep_not_malformed(tmp_path: Path) -> None:
    """orjson stops at 1024 levels with "depth limit exceeded": the reason is the one of any event nested past
    MAX_EVENT_DEPTH, in every line format and in a file read as one document."""
    reason = f"nested deeper than {MAX_EVENT_DEPTH} levels"
    for depth in (200, 5000):  # within orjson's limit, and past it
        deep = exec_event() | {"requestObject": {"deep": "[" * depth + "]" * depth}}
        text = orjson.dumps(deep).replace(b'"[', b"[").replace(b']"', b"]")
        log = tmp_path / f"audit-{depth}.log"
        log.write_bytes(line(exec_event()) + text + b"\n" + line(lease_event()))
        aks = tmp_path / f"PT1H-{depth}.json"
        record = orjson.dumps({"category": "kube-audit", "properties": {"log": "EVENT"}})
        aks.write_bytes(record.replace(b'"EVENT"', line(exec_event())[:-1]) + b"\n" + record.replace(b'"EVENT"', text))
        document = tmp_path / f"eventlist-{depth}.json"
        document.write_bytes(b'{\n"kind": "EventList",\n"items": [\n' + text + b"\n]}\n")
        for path, events_kept in ((log, 2), (aks, 1), (document, 0)):
            events, rejected, _ = read(path)
            assert len(events) == events_kept, path
            assert [r.reason for r in rejected] == [reason], (path, depth)


def test_a_subscription_record_that_is_not_ascii_is_rejected_and_the_file_read_on(tmp_path: Path) -> None:
    """Found by fuzzing: base64 with other characters raised ValueError out of the reader (a traceback)."""
    path = tmp_path / "records.txt"
    lambda_event = orjson.dumps({"awslogs": {"data": "H4sIéé"}})
    good = base64.b64encode(subscription_message([orjson.dumps(exec_event()).decode()]))
    path.write_bytes("H4sIété\n".encode() + lambda_event + b"\n" + good + b"\n")
    events, rejected, _ = read(path, fmt="cloudwatch-subscription")
    assert [r.origin for r in rejected] == [f"{path}:1", f"{path}:2"]
    assert all("not base64 gzip JSON" in r.reason for r in rejected)
    assert [e.origin for e in events] == [f"{path}:3#0"]


def test_a_cloudwatch_s3_export_whose_first_message_is_junk_is_still_one(tmp_path: Path) -> None:
    """Found by fuzzing: the file was sniffed as an apiserver log, and its valid events were lost."""
    path = tmp_path / "000000.txt"
    path.write_bytes(b"2026-11-20T09:12:03.151Z 0\n2026-11-20T09:12:03.152Z " + orjson.dumps(exec_event()) + b"\n")
    events, rejected, _ = read(path)
    assert [e.origin for e in events] == [f"{path}:2"] and [r.origin for r in rejected] == [f"{path}:1"]


def test_shapes_that_recursed_or_overflowed_now_read(tmp_path: Path) -> None:
    assert micro_time("0001-01-01T00:00:00+14:00") is None and micro_time("9999-12-31T23:59:59-14:00") is None
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    assert detect_format(b"[" * 1000 + b"1" + b"]" * 1000) == ("apiserver", False)
    entry = {
        "insertId": "x",
        "protoPayload": {"methodName": "io.k8s.core.v1.pods.get"},
        "labels": {"a": deep, "b": "ok"},
    }
    event = gke_event(entry)
    assert isinstance(event, dict) and event["annotations"] == {"b": "ok"}
    elastic = {"kubernetes": {"audit": {"auditID": "x", "requestObject": {"deep": deep}}}}
    assert isinstance(elastic_event(elastic), dict)


def test_a_csv_export_with_a_long_message_or_an_overlong_line(tmp_path: Path) -> None:
    message = orjson.dumps(exec_event() | {"requestObject": {"pad": "x" * 200_000}}).decode().replace('"', '""')
    path = tmp_path / "insights.csv"
    path.write_text(f'@timestamp,@message\n2026-11-20 10:00:30.000,"{message}"\n')
    events, rejected, _ = read(path, fmt="cloudwatch-insights")
    assert len(events) == 1 and not rejected  # over csv's default field limit of 128 KiB
    with path.open("ab") as out:
        out.write(b"2026-11-20 10:00:31.000," + b"y" * (MAX_LINE_BYTES + 1) + b"\n")
    events, rejected, _ = read(path, fmt="cloudwatch-insights")
    assert len(events) == 1 and rejected[0].reason.startswith(f"line longer than {MAX_LINE_BYTES} bytes")


def test_dead_letters_fit_a_record_whatever_the_payload() -> None:
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    big = Rejected("o", "r", {"data": "x" * (2 * DEAD_LETTER_PAYLOAD_BYTES)})
    record = orjson.loads(dead_letter(big))
    assert record["payload_truncated"] is True and record["payload"].endswith(TRUNCATED)
    assert len(record["payload"]) <= DEAD_LETTER_PAYLOAD_BYTES + len(TRUNCATED)
    assert len(dead_letter(big)) < MAX_RECORD_BYTES
    odd = orjson.loads(dead_letter(Rejected("o", "r", deep)))  # deeper than orjson writes: still a record
    assert odd["origin"] == "o" and len(dead_letter(Rejected("o", "r", deep))) < MAX_RECORD_BYTES
    plain = orjson.loads(dead_letter(Rejected("o", "r", {"a": [1]})))
    assert plain == {"origin": "o", "reason": "r", "payload": {"a": [1]}, "payload_truncated": False}
