"""Archive shapes shared by the archive tests (a CloudWatch Logs subscription record as Firehose delivers it), and
a file read as replay reads it."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson

from ingest.archives import ArchiveStats, read_archives

WHOLE = 1 << 30  # `whole_document_bytes` that decodes every document of the tests whole


def subscription_message(messages: list[str], kind: str = "DATA_MESSAGE") -> bytes:
    """A gzipped CloudWatch Logs subscription record holding `messages` (one log event each)."""
    body = {
        "messageType": kind,
        "owner": "111122223333",
        "logGroup": "/aws/eks/prod/cluster",
        "logStream": "kube-apiserver-audit-6f1a2b3c4d5e" if kind == "DATA_MESSAGE" else "",
        "subscriptionFilters": ["to-firehose"],
        "logEvents": [{"id": f"3891{i}", "timestamp": 1795165923151, "message": m} for i, m in enumerate(messages)],
    }
    return gzip.compress(orjson.dumps(body))  # fmt: skip


def read(path: Path, **kwargs: Any) -> tuple[list[tuple[str, Any]], list[tuple[str, str, Any]], ArchiveStats]:
    """A file read by `read_archives` (`kwargs`: its options): its events and rejects (origin, reason, payload)."""
    stats = ArchiveStats()
    evs: list[tuple[str, Any]] = []
    rejected: list[tuple[str, str, Any]] = []
    for batch, rejects in read_archives([str(path)], stats, **kwargs):
        evs.extend((e.origin, e.raw) for e in batch)
        rejected.extend((r.origin, r.reason, r.payload) for r in rejects.kept)
    return evs, rejected, stats
