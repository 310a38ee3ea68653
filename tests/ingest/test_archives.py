"""Archive readers: one request, written in every shape users keep audit logs in, reads back the same."""

from __future__ import annotations

import base64
import codecs
import copy
import csv
import gzip
import io
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.events import AuditEvent, Rejected
from ingest.archives import ArchiveStats, detect_format, input_files, order_files, read_archives
from ingest.archives.files import head_of
from ingest.archives.normalise import micro_time
from ingest.archives.reader import Deduper
from ingest.archives.records import Counters
from tests.support.archives import subscription_message
from tests.support.cli import RunCli

REQUEST_RECEIVED = "2026-11-20T09:12:03.104211Z"
STAGE_TIME = "2026-11-20T09:12:03.151874Z"


def pod_create(audit_id: str = "5b1c2a4e-7f43-4bde-9d51-0c3e5a9f8e21") -> dict[str, Any]:
    """A request as the kube-apiserver log backend writes it: alice creates a pod in shop."""
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request", "auditID": audit_id,
        "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/shop/pods?fieldManager=kubectl-client-side-apply",
        "verb": "create",
        "user": {"username": "alice@example.com", "groups": ["devs", "system:authenticated"]},
        "sourceIPs": ["203.0.113.7"], "userAgent": "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46",
        "objectRef": {"resource": "pods", "namespace": "shop", "name": "web-1", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestObject": {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "web-1", "namespace": "shop"},
                          "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                                   "securityContext": {"privileged": True}}]}},
        "requestReceivedTimestamp": REQUEST_RECEIVED, "stageTimestamp": STAGE_TIME,
        "annotations": {"authorization.k8s.io/decision": "allow",
                        "authorization.k8s.io/reason": 'RBAC: allowed by RoleBinding "devs/shop"'},
    }  # fmt: skip


def summary(event: AuditEvent) -> dict[str, Any]:
    """The fields every shape must agree on."""
    ref = event.raw.get("objectRef", {})
    return {
        "user": event.username, "verb": event.verb, "stage": event.stage,
        "objectRef": {k: ref.get(k) for k in ("resource", "namespace", "name", "apiGroup", "subresource")},
        "code": event.response_code, "sourceIP": event.source_ips[-1] if event.source_ips else None,
        "received": event.raw.get("requestReceivedTimestamp"), "stageTimestamp": event.raw.get("stageTimestamp"),
        "decision": event.decision,
        "privileged": event.get("$containers[*].securityContext.privileged"),
    }  # fmt: skip


def read(*paths: Path, fmt: str | None = None) -> tuple[list[AuditEvent], list[Rejected], ArchiveStats]:
    stats = ArchiveStats()
    events: list[AuditEvent] = []
    rejected: list[Rejected] = []
    for evs, rej in read_archives([str(p) for p in paths], stats, fmt=fmt):
        events.extend(evs)
        rejected.extend(rej.kept)
    return events, rejected, stats


def cw_event(message: str, stream: str = "kube-apiserver-audit-6f1a2b3c4d5e", n: int = 0) -> dict[str, Any]:
    return {"timestamp": 1795165923151, "ingestionTime": 1795165924000, "eventId": f"3891{n:04d}",
            "logStreamName": stream, "message": message}  # fmt: skip


def gke_entry(event: dict[str, Any]) -> dict[str, Any]:
    """The same request as GKE's Cloud Audit Logs store it (a LogEntry with an AuditLog protoPayload)."""
    return {
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "authenticationInfo": {"principalEmail": event["user"]["username"]},
            "authorizationInfo": [{"granted": True, "permission": "io.k8s.core.v1.pods.create",
                                   "resource": "core/v1/namespaces/shop/pods/web-1"}],
            "methodName": "io.k8s.core.v1.pods.create",
            "requestMetadata": {"callerIp": event["sourceIPs"][-1], "callerSuppliedUserAgent": event["userAgent"]},
            "resourceName": "core/v1/namespaces/shop/pods/web-1",
            "serviceName": "k8s.io",
            "request": {"@type": "core.k8s.io/v1.Pod", **event["requestObject"]},
            "status": {},
        },
        "insertId": event["auditID"],
        "resource": {"type": "k8s_cluster", "labels": {"cluster_name": "prod", "location": "europe-west1",
                                                       "project_id": "shop-prod"}},
        "timestamp": "2026-11-20T09:12:03.104211337Z",
        "receiveTimestamp": "2026-11-20T09:12:03.151874902Z",
        "severity": "NOTICE",
        "logName": "projects/shop-prod/logs/cloudaudit.googleapis.com%2Factivity",
        "labels": event["annotations"],
        "operation": {"id": event["auditID"], "producer": "k8s.io", "first": True, "last": True},
    }  # fmt: skip


def elastic_rebuilt(event: dict[str, Any]) -> dict[str, Any]:
    audit = copy.deepcopy(event)
    audit["annotations"] = {k.replace(".", "_"): v for k, v in audit["annotations"].items()}
    del audit["requestObject"]["metadata"]  # the ingest pipeline removes it
    return {"@timestamp": "2026-11-20T09:12:03.151Z", "data_stream": {"dataset": "kubernetes.audit_logs"},
            "kubernetes": {"audit": audit}, "user": {"name": audit["user"]["username"]},
            "source": {"ip": "203.0.113.7"}, "event": {"action": "create", "outcome": "success"}}  # fmt: skip


def write_every_shape(folder: Path, event: dict[str, Any]) -> dict[str, Path]:
    line = orjson.dumps(event).decode()
    files: dict[str, Path] = {}
    sub = folder / "apiserver"
    sub.mkdir()
    files["apiserver"] = sub / "audit.log"
    files["apiserver"].write_text(line + "\n")
    files["apiserver-gz"] = folder / "audit-2026-11-20T09-30-00.000.log.gz"
    files["apiserver-gz"].write_bytes(gzip.compress((line + "\n").encode()))
    files["cloudwatch"] = folder / "filter-log-events.json"
    files["cloudwatch"].write_bytes(orjson.dumps({"events": [cw_event(line)], "searchedLogStreams": []},
                                                 option=orjson.OPT_INDENT_2))  # fmt: skip
    files["cloudwatch-s3"] = folder / "000000.gz"
    files["cloudwatch-s3"].write_bytes(gzip.compress(f"2026-11-20T09:12:03.151Z {line}\n".encode()))
    files["cloudwatch-subscription"] = folder / "kinesis-records.txt"
    files["cloudwatch-subscription"].write_bytes(base64.b64encode(subscription_message([line])) + b"\n")
    files["firehose"] = folder / "firehose-object"  # gzip of the (already gzipped) subscription messages
    files["firehose"].write_bytes(gzip.compress(subscription_message([line])))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["@timestamp", "@message"])
    writer.writerow(["2026-11-20 09:12:03.151", line])
    files["cloudwatch-insights"] = folder / "insights.csv"
    files["cloudwatch-insights"].write_text(buf.getvalue())
    files["gke"] = folder / "cloudaudit.googleapis.com_activity.json"
    files["gke"].write_bytes(orjson.dumps(gke_entry(event)) + b"\n")
    files["aks"] = folder / "eventhub-message.json"
    files["aks"].write_bytes(orjson.dumps({"records": [{
        "category": "kube-audit", "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "resourceId": "/SUBSCRIPTIONS/X/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/PROD",
        "time": "2026-11-20T09:12:03.1518740Z",
        "properties": {"log": line, "pod": "kube-apiserver-7d9f", "stream": "stdout"}}]}))  # fmt: skip
    files["aks-storage"] = folder / "PT1H.json"
    files["aks-storage"].write_bytes(orjson.dumps({"category": "kube-audit-admin", "time": "2026-11-20T09:12:03Z",
                                                   "properties": {"log": event}}) + b"\n")  # fmt: skip
    files["elastic"] = folder / "elastic-original.ndjson"
    files["elastic"].write_bytes(orjson.dumps({"_index": ".ds-logs-kubernetes.audit_logs-default",
                                               "_source": {"event": {"original": line}}}) + b"\n")  # fmt: skip
    files["elastic-rebuilt"] = folder / "elastic-rebuilt.ndjson"
    files["elastic-rebuilt"].write_bytes(orjson.dumps(elastic_rebuilt(event)) + b"\n")
    return files


def test_the_same_request_reads_the_same_from_every_shape(tmp_path: Path) -> None:
    event = pod_create()
    files = write_every_shape(tmp_path, event)
    expected = summary(AuditEvent(raw=event))
    for shape, path in files.items():
        events, rejected, _ = read(path)
        assert not rejected, (shape, rejected)
        assert len(events) == 1, shape
        got = summary(events[0])
        if shape == "elastic-rebuilt":
            assert got == expected, shape  # requestObject.metadata is gone, the spec is not
        else:
            assert got == expected, shape
        assert events[0].audit_id == event["auditID"], shape
        line = 2 if shape == "cloudwatch-insights" else 1  # the CSV header is line 1
        assert events[0].origin.startswith(f"{path}:{line}"), shape


def test_formats_are_detected_per_file_and_can_be_forced(tmp_path: Path) -> None:
    files = write_every_shape(tmp_path, pod_create())
    expected = {
        "apiserver": "apiserver", "cloudwatch": "cloudwatch", "cloudwatch-subscription": "cloudwatch-subscription",
        "cloudwatch-insights": "cloudwatch-insights", "gke": "gke", "aks": "aks", "aks-storage": "aks",
        "elastic": "elastic", "elastic-rebuilt": "elastic",
    }  # fmt: skip
    for shape, fmt in expected.items():
        head = files[shape].read_bytes()[:65536]
        assert detect_format(head)[0] == fmt, shape
    assert detect_format(gzip.decompress(files["cloudwatch-s3"].read_bytes()))[0] == "cloudwatch-s3"
    events, rejected, stats = read(files["gke"], fmt="gke")
    assert len(events) == 1 and stats.formats == {"gke": 1}
    # forcing the wrong format reports records, it does not crash
    events, rejected, _ = read(files["gke"], fmt="aks")
    assert not events


@pytest.mark.parametrize("key", ["records", "original", "_source", "protoPayload", "logEvents", "messageType"])
def test_a_log_whose_first_event_is_larger_than_the_head_is_read_line_by_line(tmp_path: Path, key: str) -> None:
    # the first line does not fit in the 64 KiB that detection peeks at, and its body holds a key of another format
    big = pod_create("big")
    big["requestObject"]["metadata"]["annotations"] = {key: "x", "filler": "y" * 100_000}
    path = tmp_path / "audit.log"
    lines = [orjson.dumps(big), *(orjson.dumps(pod_create(f"id-{n}")) for n in range(5))]
    lines.insert(3, b'{"kind": "Event", broken')  # a bad line does not end the read
    path.write_bytes(b"\n".join(lines) + b"\n")
    events, rejected, stats = read(path)
    assert stats.formats == {"apiserver": 1}
    assert [e.raw["auditID"] for e in events] == ["big", "id-0", "id-1", "id-2", "id-3", "id-4"]
    assert [r.origin for r in rejected] == [f"{path}:4"]


def test_documents_one_after_another_on_a_line_ending_in_a_newline_are_one_whole_document(tmp_path: Path) -> None:
    records = [gzip.decompress(subscription_message([orjson.dumps(pod_create(f"id-{n}")).decode()])) for n in range(3)]
    path = tmp_path / "firehose.json"
    path.write_bytes(b"".join(records) + b"\n")  # as Firehose writes them, then a newline
    assert detect_format(path.read_bytes()) == ("cloudwatch-subscription", True)
    events, rejected, _stats = read(path)
    assert [e.raw["auditID"] for e in events] == ["id-0", "id-1", "id-2"] and not rejected
    assert detect_format(b'{"kind": "Event"} junk\n{"kind": "Event"}\n') == ("apiserver", False)


@pytest.mark.parametrize("shape", ["apiserver", "cloudwatch", "aks", "gke", "cloudwatch-s3"])
def test_a_file_that_starts_with_a_utf8_bom_reads_every_event(tmp_path: Path, shape: str) -> None:
    path = write_every_shape(tmp_path, pod_create())[shape]
    data = path.read_bytes()
    path.write_bytes(b"\xef\xbb\xbf" + (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data))
    events, rejected, _stats = read(path)
    assert len(events) == 1 and not rejected, rejected


@pytest.mark.parametrize("bom", [codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE])
@pytest.mark.parametrize("shape", ["apiserver", "cloudwatch", "aks", "cloudwatch-insights", "elastic"])
def test_a_utf16_file_with_its_bom_reads_every_event(tmp_path: Path, shape: str, bom: bytes) -> None:
    """What Windows PowerShell writes with `>` or Out-File: UTF-16LE (or BE) after a byte order mark; gzipped too."""
    path = write_every_shape(tmp_path, pod_create())[shape]
    text = path.read_bytes().decode()
    if shape == "apiserver":  # and a line with a lone surrogate: rejected, as a line that is not UTF-8 is
        text += orjson.dumps(pod_create("id-2")).decode().replace("id-2", "\udc80")
    data = bom + text.encode("utf-16-le" if bom == codecs.BOM_UTF16_LE else "utf-16-be", "surrogatepass")
    for name, content in (("plain", data), ("gzipped", gzip.compress(data))):
        path.write_bytes(content)
        events, rejected, _stats = read(path)
        assert [e.raw["auditID"] for e in events] == [pod_create()["auditID"]], name
        assert [(r.origin, r.reason.split(" at ")[0]) for r in rejected] == (
            [(f"{path}:2", "invalid UTF-8")] if shape == "apiserver" else []
        )


@pytest.mark.parametrize("bom", [codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE])
def test_a_utf16_file_cut_to_an_odd_byte_keeps_every_line_and_rejects_the_cut(tmp_path: Path, bom: bytes) -> None:
    """A UTF-16 file copied while it was written ends with half a character: the lines before it are read (the
    last one too, whose newline the cut took), and the cut is a reject naming the line after them, as a gzip
    stream cut short is; plain and gzipped."""
    encoding = "utf-16-le" if bom == codecs.BOM_UTF16_LE else "utf-16-be"
    text = "".join(orjson.dumps(pod_create(f"id-{n}")).decode() + "\n" for n in range(40))  # over a read's 64 KiB
    whole = bom + text.encode(encoding)
    path = tmp_path / "audit.log"
    cut_reason = "cannot read: UTF-16 file cut short: it ends with half a character (an odd number of bytes)"
    for name, data, ids, rejects in (
        ("newline cut", whole[:-1], 40, [(f"{path}:41", cut_reason)]),
        ("an odd byte more", whole + b"{", 40, [(f"{path}:41", cut_reason)]),
        (
            "cut in a line",
            whole[: len(whole) - 101],
            39,
            [(f"{path}:40", "malformed JSON"), (f"{path}:41", cut_reason)],
        ),
    ):
        for packed in (data, gzip.compress(data)):
            path.write_bytes(packed)
            events, rejected, stats = read(path)
            assert [e.raw["auditID"] for e in events] == [f"id-{n}" for n in range(ids)], name
            assert [(r.origin, r.reason.split(":")[0] if r.origin.endswith(":40") else r.reason) for r in rejected] == (
                rejects
            ), name
            assert stats.lines == 40, name


class _Pipe(io.RawIOBase):
    """A pipe whose writer is slow: each read returns at most 100 bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), len(self._data), 100)
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


def test_the_head_of_a_pipe_is_its_whole_first_line() -> None:
    data = b"".join(orjson.dumps(pod_create(f"id-{n}")) + b"\n" for n in range(3))
    head, stream = head_of(io.BufferedReader(_Pipe(data)))
    assert head == data[: data.index(b"\n") + 1]
    assert detect_format(head) == ("apiserver", False)
    assert stream.read() == data  # nothing lost


def test_a_gzip_log_cut_short_keeps_every_line_before_the_cut(tmp_path: Path) -> None:
    data = b"".join(orjson.dumps(pod_create(f"id-{n}")) + b"\n" for n in range(2000))
    packed = gzip.compress(data)
    cut = packed[: len(packed) * 3 // 4]  # as a copy of a file still being written
    whole_lines = zlib.decompressobj(wbits=31).decompress(cut).count(b"\n")
    path = tmp_path / "audit.log.gz"
    path.write_bytes(cut)
    events, rejected, _stats = read(path)
    assert [e.raw["auditID"] for e in events] == [f"id-{n}" for n in range(whole_lines)]
    assert len(rejected) == 1 and rejected[0].origin == f"{path}:{whole_lines + 1}"
    assert "end-of-stream marker" in rejected[0].reason


def test_a_whole_directory_of_every_shape_dedupes_to_one_event(tmp_path: Path) -> None:
    event = pod_create()
    write_every_shape(tmp_path, event)
    events, rejected, stats = read(tmp_path)
    assert not rejected
    # GKE's event has its own auditID (insertId); it is the same id here, so every copy is one event
    assert len(events) == 1
    assert stats.files == 12 and stats.duplicates == 11


def test_cloudwatch_truncation_other_streams_and_control_messages(tmp_path: Path) -> None:
    event = pod_create()
    line = orjson.dumps(event).decode()
    big = line[: 256 * 1024 - 20] + "[Truncated...]"
    path = tmp_path / "events.json"
    path.write_bytes(orjson.dumps({"events": [
        cw_event(line, n=0), cw_event(big, n=1), cw_event("I1120 09:12:03 authenticator", "authenticator-1a2b", 2),
        cw_event(orjson.dumps(pod_create("second")).decode(), n=3)]}, option=orjson.OPT_INDENT_2))  # fmt: skip
    events, rejected, stats = read(path)
    assert [e.audit_id for e in events] == [event["auditID"], "second"]
    assert [e.origin for e in events] == [f"{path}:1#0", f"{path}:1#3"]
    assert len(rejected) == 1 and rejected[0].origin == f"{path}:1#1"
    assert "truncated by CloudWatch" in rejected[0].reason and len(rejected[0].payload) <= 4096
    assert stats.skipped == 1

    sub = tmp_path / "kinesis.txt"
    sub.write_bytes(
        base64.b64encode(subscription_message([], kind="CONTROL_MESSAGE")) + b"\n"
        + base64.b64encode(subscription_message([line, big])) + b"\n"
        + b"bm90IGd6aXA=\n"
    )  # fmt: skip
    events, rejected, stats = read(sub)
    assert len(events) == 1 and events[0].origin == f"{sub}:2#0"
    assert [r.origin for r in rejected] == [f"{sub}:2#1", f"{sub}:3"]
    assert stats.skipped == 1  # the CONTROL_MESSAGE

    s3 = tmp_path / "export.gz"
    s3.write_bytes(gzip.compress(
        f"2026-11-20T09:12:03.151Z {line}\n2026-11-20T09:12:04.000Z {big}\nnot a line\n".encode()))  # fmt: skip
    events, rejected, _ = read(s3)
    assert len(events) == 1
    assert [r.origin for r in rejected] == [f"{s3}:2", f"{s3}:3"]


def test_aks_categories_and_bad_logs(tmp_path: Path) -> None:
    event = pod_create()
    path = tmp_path / "hub.json"
    path.write_bytes(orjson.dumps({"records": [
        {"category": "kube-apiserver", "properties": {"log": "I1120 09:12:03.1 1 get.go:1] GET /healthz: (1ms) 200"}},
        {"category": "kube-audit", "properties": {"log": orjson.dumps(event).decode()}},
        {"category": "kube-controller-manager", "properties": {"log": "E1120 leaderelection lost"}},
        {"category": "kube-audit-admin", "properties": {"log": "{\"kind\":\"Event\", broken"}},
        {"category": "kube-audit", "properties": {"log": 42}},
    ]}) + b"\n" + orjson.dumps({"records": [{"category": "guard", "properties": {"log": "x"}}]}) + b"\n")  # fmt: skip
    events, rejected, stats = read(path)
    assert [e.origin for e in events] == [f"{path}:1#1"]
    assert [r.origin for r in rejected] == [f"{path}:1#3", f"{path}:1#4"]  # bad JSON; a number is not a log
    assert stats.skipped == 3


def test_gke_mapping_details() -> None:
    from ingest.archives.gke import gke_event

    event = pod_create()
    entry = gke_entry(event)
    exec_entry = copy.deepcopy(entry)
    exec_entry["protoPayload"].update(methodName="io.k8s.core.v1.pods.exec.create",
                                      resourceName="core/v1/namespaces/shop/pods/web-1/exec")  # fmt: skip
    out = gke_event(exec_entry)
    assert isinstance(out, dict)
    assert out["stage"] == "ResponseStarted" and out["responseStatus"]["code"] == 101
    assert out["objectRef"]["subresource"] == "exec"
    assert out["requestURI"] == "/api/v1/namespaces/shop/pods/web-1/exec"
    denied = copy.deepcopy(entry)
    denied["protoPayload"]["status"] = {"code": 7, "message": "forbidden"}
    denied["labels"] = {"authorization.k8s.io/decision": "forbid"}
    out = gke_event(denied)
    assert isinstance(out, dict) and out["responseStatus"]["code"] == 403 and out["stage"] == "ResponseComplete"
    for grpc, http in ((16, 401), (5, 404), (6, 409), (3, 400)):
        denied["protoPayload"]["status"] = {"code": grpc}
        out = gke_event(denied)
        assert isinstance(out, dict) and out["responseStatus"]["code"] == http
    rbac = copy.deepcopy(entry)
    rbac["protoPayload"].update(methodName="io.k8s.authorization.rbac.v1.clusterrolebindings.create",
                                resourceName="rbac.authorization.k8s.io/v1/clusterrolebindings/evil")  # fmt: skip
    out = gke_event(rbac)
    assert isinstance(out, dict)
    assert out["objectRef"] == {"resource": "clusterrolebindings", "name": "evil",
                                "apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1"}  # fmt: skip
    assert out["requestURI"] == "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/evil"
    readyz = copy.deepcopy(entry)
    readyz["protoPayload"].update(methodName="io.k8s.get", resourceName="readyz")
    out = gke_event(readyz)
    assert isinstance(out, dict) and "objectRef" not in out and out["requestURI"] == "/readyz" and out["verb"] == "get"
    ns = copy.deepcopy(entry)
    ns["protoPayload"].update(methodName="io.k8s.core.v1.namespaces.delete", resourceName="core/v1/namespaces/foo")
    out = gke_event(ns)
    assert isinstance(out, dict) and out["objectRef"]["namespace"] == "foo" and out["objectRef"]["name"] == "foo"
    no_labels = copy.deepcopy(entry)
    del no_labels["labels"]
    out = gke_event(no_labels)
    assert isinstance(out, dict) and out["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert micro_time("2026-11-20T09:12:03.104211337Z") == "2026-11-20T09:12:03.104211Z"


def test_rotated_files_are_read_in_time_order_with_the_live_file_last(tmp_path: Path) -> None:
    names = ["audit.log", "audit-2026-11-20T10-00-00.000.log.gz", "audit-2026-11-19T23-59-59.999.log",
             "audit-2026-11-20T09-15-00.000.log.gz", "other.json"]  # fmt: skip
    for name in names:
        data = orjson.dumps(pod_create(f"id-{name}")) + b"\n"
        (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    ordered = [Path(p).name for p in input_files([str(tmp_path)])]
    assert ordered == ["audit-2026-11-19T23-59-59.999.log", "audit-2026-11-20T09-15-00.000.log.gz",
                       "audit-2026-11-20T10-00-00.000.log.gz", "audit.log", "other.json"]  # fmt: skip
    assert [p.name for p in order_files([tmp_path / n for n in names])] == ordered
    events, _, stats = read(tmp_path)
    assert [e.audit_id for e in events] == [f"id-{n}" for n in ordered] and stats.duplicates == 0


def test_duplicates_need_the_same_id_stage_and_time(tmp_path: Path) -> None:
    a = pod_create("same")
    forged = copy.deepcopy(a)
    forged["stageTimestamp"] = "2026-11-20T09:13:00.000000Z"  # a client re-using an Audit-ID
    (tmp_path / "a.log").write_bytes(orjson.dumps(a) + b"\n" + orjson.dumps(forged) + b"\n")
    (tmp_path / "b.log").write_bytes(orjson.dumps(a) + b"\n")
    events, _, stats = read(tmp_path)
    assert len(events) == 2 and stats.duplicates == 1


def test_deduper_remembers_two_generations_of_keys() -> None:
    """Copies within one batch, across batches and in the previous generation are dropped; older ones are kept
    (the memory bound)."""
    deduper, counters = Deduper(generation=3), Counters()

    def unique(*ids: str) -> list[str]:
        return [e.audit_id for e in deduper.unique([AuditEvent(pod_create(i)) for i in ids], counters)]

    assert unique("a", "b", "a") == ["a", "b"] and counters.duplicates == 1
    assert unique("b", "c") == ["c"] and counters.duplicates == 2  # now a generation: a, b, c
    assert unique("a", "d", "d") == ["d"] and counters.duplicates == 4  # `a` from the previous one
    assert unique("e", "f", "a") == ["e", "f"] and counters.duplicates == 5  # then d, e, f replace a, b, c
    assert unique("a", "d") == ["a"] and counters.duplicates == 6


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=6), max_size=12), st.integers(1, 5))
def test_deduper_keeps_what_two_generations_of_seen_keys_say(batches: list[list[str]], generation: int) -> None:
    """Batches with and without copies (the former take the event-by-event way), against a plain model."""
    deduper, counters = Deduper(generation=generation), Counters()
    current: set[str] = set()
    previous: set[str] = set()
    dropped = 0
    for ids in batches:
        expected = []
        for audit_id in ids:
            if audit_id in current or audit_id in previous:
                dropped += 1
            else:
                current.add(audit_id)
                expected.append(audit_id)
        if len(current) >= generation:
            previous, current = current, set()
        kept = deduper.unique([AuditEvent(pod_create(i)) for i in ids], counters)
        assert [e.audit_id for e in kept] == expected
        assert counters.duplicates == dropped


def test_deduper_keys_cannot_be_forged_with_the_separator() -> None:
    """A key joins auditID, stage and stageTimestamp with \x1f: an auditID holding separators, stage names or
    times (clients choose it) never makes two different events one."""
    base = pod_create("a")
    stamp = base["stageTimestamp"]
    forged_ids = ["a", f"a\x1fResponseComplete\x1f{stamp}", "a\x1fResponseComplete", "a\x1f", "\x1fa"]
    events = []
    for audit_id in forged_ids:
        for stage in ("ResponseComplete", "RequestReceived"):
            raw = copy.deepcopy(base)
            raw["auditID"], raw["stage"] = audit_id, stage
            events.append(AuditEvent(raw))
    old_format = copy.deepcopy(base)
    del old_format["stageTimestamp"]
    old_format["timestamp"] = stamp  # v1alpha1: no stageTimestamp
    events.append(AuditEvent(old_format))
    counters = Counters()
    assert len(Deduper().unique(events, counters)) == len(events) and counters.duplicates == 0
    assert len(Deduper().unique(events + events, counters)) == len(events) and counters.duplicates == len(events)


def test_cli_convert_prints_normalised_events(tmp_path: Path, run_cli: RunCli) -> None:
    event = pod_create()
    files = write_every_shape(tmp_path, event)
    result = run_cli("convert", str(files["gke"]), str(files["aks"]), str(files["cloudwatch-insights"]))
    assert result.code == 0, result.err
    lines = [orjson.loads(x) for x in result.out.splitlines()]
    assert len(lines) == 1 and lines[0]["objectRef"]["name"] == "web-1"  # the other two are duplicates
    assert "duplicates dropped: 2" in result.err
    result = run_cli("convert", "--format", "gke", str(files["gke"]))
    assert result.code == 0 and orjson.loads(result.out)["user"]["username"] == "alice@example.com"


@pytest.mark.parametrize("shape", ["cloudwatch", "gke", "aks"])
def test_cli_replay_of_other_formats_finds_the_same_alert(tmp_path: Path, shape: str, run_cli: RunCli) -> None:
    files = write_every_shape(tmp_path, pod_create())
    result = run_cli("replay", str(files[shape]), "--output", "-", "--quiet")
    assert result.code == 0, result.err
    rules = {orjson.loads(x)["rule_id"] for x in result.out.splitlines()}
    assert "privileged-container" in rules
